package benchmark

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// WriteMarkdown writes the report as the README's performance tables.
func WriteMarkdown(w io.Writer, rep *Report, command string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# passbatch benchmark results\n\nReproduce with `%s` (took %s).\n\n", command, rep.Took.Round(1e9))
	fmt.Fprintf(&b, "## Machine\n\n")
	for _, k := range slices.Sorted(maps.Keys(rep.Machine)) {
		fmt.Fprintf(&b, "- %s: %s\n", k, rep.Machine[k])
	}
	if rep.Seed != nil {
		fmt.Fprintf(&b, "\nData set: %d users, %d passes, %d bookings (seeded with COPY in %s).\n",
			rep.Seed.Users, rep.Seed.Passes, rep.Seed.Bookings, (rep.Seed.UsersTook + rep.Seed.PassesTook + rep.Seed.BookingsTook).Round(1e8))
	}
	writeResults(&b, rep.Results)
	if fc := rep.FixedCost; fc != nil && len(fc.Each) > 0 {
		var each []string
		for _, d := range fc.Each {
			each = append(each, fmt.Sprint(d.Round(time.Millisecond)))
		}
		fmt.Fprintf(&b, "\n## A small job's fixed cost\n\nuse-passes over %d bookings (one partition), one idle worker process, launch → COMPLETED from the job repository's times, %d runs: p50 %s, max %s (%s).\n",
			fc.Rows, len(fc.Each), fc.P50.Round(time.Millisecond), fc.Max.Round(time.Millisecond), strings.Join(each, ", "))
	}
	if a := rep.API; a != nil {
		writeAPI(&b, a)
	}
	writeProfiles(&b, rep.Profiles)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeAPI writes the api section: a row per route and load.
func writeAPI(b *strings.Builder, a *APIResult) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
	fmt.Fprintf(b, "\n## The api under load\n\nThe api process, Postgres and the load generator on the same machine; members send their session cookie, admins the admin token; /admin/jobs over %d job executions. Closed loop: each user sends its next request when the last is answered. Open loop: requests arrive at a fixed rate whatever the answers, so the latencies include queueing. Each measured after a second's warm-up.\n\n", a.Executions)
	fmt.Fprintf(b, "| route | load | requests | requests/s | p50 ms | p99 ms | p99.9 ms | errors |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range a.Routes {
		fmt.Fprintf(b, "| `GET %s` | %s | %d | %.0f | %s | %s | %s | %d |\n", r.Route, r.Load, r.Requests, r.PerSec, ms(r.P50), ms(r.P99), ms(r.P999), r.Errors)
	}
	fmt.Fprintf(b, "\napi peak RSS over all of them: %.0f MB.\n", a.PeakRSSMB)
	for _, n := range a.Notes {
		fmt.Fprintf(b, "\n%s.\n", n)
	}
}

// writeResults writes the results table, each job against its set-based,
// chunked-SQL and one-task-per-item runs and its one-worker run.
func writeResults(b *strings.Builder, results []Result) {
	base := map[string]float64{}
	chunked := map[string]float64{}
	naive := map[string]float64{}
	one := map[string]float64{}
	for _, r := range results {
		switch r.Variant {
		case "set-based SQL":
			base[r.Scenario] = r.ItemsPerSec
		case "chunked SQL":
			chunked[r.Scenario] = r.ItemsPerSec
		case "one task per item":
			naive[fmt.Sprintf("%s/%d", r.Scenario, r.Workers)] = r.ItemsPerSec
		case "passbatch job":
			if _, ok := one[r.Scenario]; !ok {
				one[r.Scenario] = r.ItemsPerSec
			}
		}
	}
	fmt.Fprintf(b, "\n## Results\n\n| job | variant | workers | items | seconds | items/s | × set-based | × chunked SQL | × one-task-per-item | scaling | worker peak RSS MB | end state |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		xb, xc, xn, sc := "", "", "", ""
		if v := base[r.Scenario]; v > 0 && r.Variant != "set-based SQL" {
			xb = fmt.Sprintf("%.2f", r.ItemsPerSec/v)
		}
		if v := chunked[r.Scenario]; v > 0 && r.Variant == "passbatch job" {
			xc = fmt.Sprintf("%.2f", r.ItemsPerSec/v)
		}
		if v := naive[fmt.Sprintf("%s/%d", r.Scenario, r.Workers)]; v > 0 && r.Variant == "passbatch job" {
			xn = fmt.Sprintf("%.1f", r.ItemsPerSec/v)
		}
		if v := one[r.Scenario]; v > 0 && r.Variant == "passbatch job" {
			sc = fmt.Sprintf("%.2f", r.ItemsPerSec/v)
		}
		w, rss := "-", "-"
		if r.Workers > 0 {
			w = fmt.Sprint(r.Workers)
		}
		if r.PeakRSSMB > 0 {
			rss = fmt.Sprintf("%.0f", r.PeakRSSMB)
		}
		state := "same as set-based"
		if !r.StateOK {
			state = "**DIFFERS**"
		}
		variant := r.Variant
		if r.Note != "" {
			variant += " (" + r.Note + ")"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %d | %.2f | %.0f | %s | %s | %s | %s | %s | %s |\n", r.Scenario, variant, w, r.Items, r.Seconds, r.ItemsPerSec, xb, xc, xn, sc, rss, state)
	}
}

// writeProfiles writes each run's top statements.
func writeProfiles(b *strings.Builder, profiles map[string][]Statement) {
	if len(profiles) > 0 {
		fmt.Fprintf(b, "\n## Where Postgres spent its time (pg_stat_statements, top 6 per run)\n")
		for _, k := range slices.Sorted(maps.Keys(profiles)) {
			fmt.Fprintf(b, "\n### %s\n\n| calls | total ms | mean ms | rows | statement |\n|---|---|---|---|---|\n", k)
			for _, s := range profiles[k] {
				fmt.Fprintf(b, "| %d | %.0f | %.3f | %d | `%s` |\n", s.Calls, s.TotalMS, s.MeanMS, s.Rows, strings.ReplaceAll(s.Query, "|", "\\|"))
			}
		}
	}
}
