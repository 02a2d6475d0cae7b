package benchmark_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/passbatch/passbatch/benchmark"
	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/internal/testenv"
)

// TestRunSmall runs the whole bench on a tiny data set with the real
// worker, api and ptctl binaries: every variant of every job must end in
// the set-based statement's state, and the report must hold every row.
func TestRunSmall(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	db := testenv.NewDB(t)
	rd := testenv.NewRedis(t)
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", "../cmd/worker", "../cmd/api", "../cmd/ptctl").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		admin, err := database.Open(context.Background(), db.URL, database.Options{MaxOpenConns: 1})
		if err == nil {
			_, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+db.Name+"_bench WITH (FORCE)")
			admin.Close()
		}
	})
	var progress bytes.Buffer
	rep, err := benchmark.Run(context.Background(), benchmark.Options{
		DatabaseURL: db.URL, RedisURL: rd.URL, Users: 500, Bookings: 5000, Workers: []int{1, 2},
		WorkerBin: filepath.Join(dir, "worker"), APIBin: filepath.Join(dir, "api"), SelfBin: filepath.Join(dir, "ptctl"),
		NaiveSample: 200, Notices: 300, APISeconds: 1, APIExecutions: 2000, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, progress.String())
	}
	if len(rep.Results) != 19 {
		t.Fatalf("%d results, want 19 (2 jobs × (1 set-based + 1 chunked SQL + 2 job + 2 naive) + 2 export formats × (COPY + 2 job) + notices)", len(rep.Results))
	}
	for _, r := range rep.Results {
		if !r.StateOK || r.Items <= 0 || r.Seconds <= 0 {
			t.Errorf("%s / %s / %d workers: state ok %v, %d items in %.3fs", r.Scenario, r.Variant, r.Workers, r.StateOK, r.Items, r.Seconds)
		}
		if r.Variant != "set-based SQL" && r.Variant != "chunked SQL" && (r.PeakRSSMB <= 0 || r.PeakRSSMB > 500) {
			t.Errorf("%s / %s: peak RSS %.0f MB", r.Scenario, r.Variant, r.PeakRSSMB)
		}
	}
	if fc := rep.FixedCost; fc == nil || len(fc.Each) != 10 || fc.P50 <= 0 || fc.Max < fc.P50 {
		t.Fatalf("small job's fixed cost %+v", fc)
	}
	if rep.API == nil || len(rep.API.Routes) < 5 || rep.API.PeakRSSMB <= 0 {
		t.Fatalf("api load %+v", rep.API)
	}
	for _, r := range rep.API.Routes {
		if r.Requests <= 0 || r.Errors != 0 || r.PerSec <= 0 || r.P50 <= 0 || r.P99 < r.P50 || r.P999 < r.P99 {
			t.Errorf("api %s (%s): %+v", r.Route, r.Load, r)
		}
	}
	var md bytes.Buffer
	if err := benchmark.WriteMarkdown(&md, rep, "test"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(md.String(), "| same as set-based |"); got != 19 || !strings.Contains(md.String(), "## A small job's fixed cost") {
		t.Fatalf("markdown has %d result rows, want 19, and the fixed cost:\n%s", got, md.String())
	}
}
