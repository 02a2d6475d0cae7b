package tasks

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/storage"
)

// Statistics parameters: the window [from, to), RFC 3339, on hour
// boundaries. Default: the hour before run.at's hour.
const (
	ParamFrom = "from"
	ParamTo   = "to"
)

// ReportPrefix is where the statistics reports are stored.
const ReportPrefix = "reports/"

// MakeStatisticsJob declares make-statistics:
//
//  1. hourly: for every hour in [from, to) upsert the counts of bookings that
//     ended in it — all, attended, cancelled — one set-based statement
//     (hours without bookings get zeros); it runs again on a restart
//     (AllowStartIfComplete);
//  2. a split of daily-report ∥ weekly-report: CSV files in storage,
//     reports/daily/YYYY-MM-DD.csv (an hour a row) and
//     reports/weekly/YYYY-Www.csv (a day a row), for every day and ISO week
//     [from, to) touches, in the gym's time zone (Asia/Seoul).
func MakeStatisticsJob(d Deps) *batch.Job {
	return &batch.Job{
		Name: JobMakeStatistics,
		Parameters: []batch.ParamSpec{
			{Name: ParamFrom, Type: batch.TypeDate, Description: "first hour (default: the hour before run.at's)"},
			{Name: ParamTo, Type: batch.TypeDate, Description: "end hour, exclusive"},
		},
		Description: "통계: hourly booking counts, daily and weekly CSV reports",
		Prepare: func(p batch.Params, now time.Time) (batch.Params, error) {
			p, err := prepareRunAt(p, now)
			if err != nil {
				return nil, err
			}
			at, _ := p.RunAt()
			_, hasFrom := p[ParamFrom]
			_, hasTo := p[ParamTo]
			if !hasFrom && !hasTo {
				to := at.UTC().Truncate(time.Hour)
				p = p.With(ParamFrom, to.Add(-time.Hour).Format(time.RFC3339), true).With(ParamTo, to.Format(time.RFC3339), true)
			}
			from, err := p.Time(ParamFrom)
			if err != nil {
				return nil, err
			}
			to, err := p.Time(ParamTo)
			if err != nil {
				return nil, err
			}
			switch {
			case !from.Before(to):
				return nil, fmt.Errorf("%w: from must be before to", batch.ErrInvalidParams)
			case !from.Equal(from.Truncate(time.Hour)) || !to.Equal(to.Truncate(time.Hour)):
				return nil, fmt.Errorf("%w: from and to must be on the hour", batch.ErrInvalidParams)
			case to.Sub(from) > 366*24*time.Hour:
				return nil, fmt.Errorf("%w: at most a year at once", batch.ErrInvalidParams)
			}
			return p, nil
		},
		Flow: []batch.Node{
			// A restart recomputes the window (the upsert is idempotent),
			// so reports made after it count bookings changed meanwhile.
			batch.NewTasklet("hourly", hourlyTasklet).AllowStartIfComplete(),
			&batch.Split{Flows: [][]*batch.Step{
				{batch.NewIOTasklet("daily-report", reportTasklet(d.Store, daily))},
				{batch.NewIOTasklet("weekly-report", reportTasklet(d.Store, weekly))},
			}},
		},
	}
}

func window(sc *batch.StepContext) (from, to time.Time) {
	from, _ = sc.Params.Time(ParamFrom)
	to, _ = sc.Params.Time(ParamTo)
	return from, to
}

func hourlyTasklet(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
	from, to := window(sc)
	n, err := exec(ctx, tx, "upsert hourly statistics", `INSERT INTO statistics (statistics_at, all_count, attended_count, cancelled_count)
		SELECT h, coalesce(c.all_count, 0), coalesce(c.attended_count, 0), coalesce(c.cancelled_count, 0)
		FROM generate_series(?::timestamptz, ?::timestamptz - interval '1 hour', interval '1 hour') AS h
		LEFT JOIN (
			SELECT date_trunc('hour', ended_at) AS hour, count(*) AS all_count,
			       count(*) FILTER (WHERE attended) AS attended_count,
			       count(*) FILTER (WHERE status = 'CANCELLED') AS cancelled_count
			FROM booking WHERE ended_at >= ? AND ended_at < ? GROUP BY 1
		) c ON c.hour = h
		ORDER BY h
		ON CONFLICT (statistics_at) DO UPDATE SET all_count = EXCLUDED.all_count,
			attended_count = EXCLUDED.attended_count, cancelled_count = EXCLUDED.cancelled_count, modified_at = now()`,
		from, to, from, to)
	if err != nil {
		return batch.Finished, err
	}
	sc.Counts.Read, sc.Counts.Write = n, n
	return batch.Finished, nil
}

// report describes one kind of CSV report.
type report struct {
	dir    string
	period func(t time.Time) (start time.Time, name string) // the period containing t, on the gym's clock
	next   func(start time.Time) time.Time
	bucket string // SQL date_trunc unit of a row
	layout string // a row's label
}

var daily = report{
	dir: "daily",
	period: func(t time.Time) (time.Time, string) {
		t = t.In(models.Seoul)
		s := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, models.Seoul)
		return s, s.Format("2006-01-02")
	},
	next:   func(s time.Time) time.Time { return s.AddDate(0, 0, 1) },
	bucket: "hour", layout: "2006-01-02 15:00",
}

var weekly = report{
	dir: "weekly",
	period: func(t time.Time) (time.Time, string) {
		t = t.In(models.Seoul)
		wd := (int(t.Weekday()) + 6) % 7 // Monday = 0
		s := time.Date(t.Year(), t.Month(), t.Day()-wd, 0, 0, 0, 0, models.Seoul)
		y, w := s.ISOWeek()
		return s, fmt.Sprintf("%d-W%02d", y, w)
	},
	next:   func(s time.Time) time.Time { return s.AddDate(0, 0, 7) },
	bucket: "day", layout: "2006-01-02",
}

// reportTasklet writes one CSV per period touched by [from, to), one period
// per call (its context remembers where it got to).
func reportTasklet(store storage.Store, r report) batch.IOTasklet {
	return func(ctx context.Context, db bun.IDB, sc *batch.StepContext) (batch.RepeatStatus, error) {
		from, to := window(sc)
		start, _ := r.period(from)
		if v, ok := sc.Context["next"].(string); ok {
			if t, err := time.Parse(time.RFC3339, v); err == nil {
				start = t
			}
		}
		if !start.Before(to) {
			return batch.Finished, nil
		}
		_, name := r.period(start)
		end := r.next(start)
		var rows []struct {
			At        time.Time `bun:"at"`
			All       int64     `bun:"all_count"`
			Attended  int64     `bun:"attended_count"`
			Cancelled int64     `bun:"cancelled_count"`
		}
		if err := db.NewRaw(`SELECT date_trunc(?, statistics_at AT TIME ZONE ?) AT TIME ZONE ? AS at,
				sum(all_count) AS all_count, sum(attended_count) AS attended_count, sum(cancelled_count) AS cancelled_count
			FROM statistics WHERE statistics_at >= ? AND statistics_at < ? GROUP BY 1 ORDER BY 1`,
			r.bucket, models.Seoul.String(), models.Seoul.String(), start, end).Scan(ctx, &rows); err != nil {
			return batch.Finished, fmt.Errorf("read statistics for %s: %w", name, err)
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		_ = w.Write([]string{"period", "all_count", "attended_count", "cancelled_count"})
		var all, att, can int64
		for _, row := range rows {
			all, att, can = all+row.All, att+row.Attended, can+row.Cancelled
			_ = w.Write([]string{row.At.In(models.Seoul).Format(r.layout), strconv.FormatInt(row.All, 10), strconv.FormatInt(row.Attended, 10), strconv.FormatInt(row.Cancelled, 10)})
		}
		_ = w.Write([]string{"total", strconv.FormatInt(all, 10), strconv.FormatInt(att, 10), strconv.FormatInt(can, 10)})
		w.Flush()
		if err := w.Error(); err != nil {
			return batch.Finished, err
		}
		// A file write is idempotent: a retried call rewrites the same bytes.
		if _, err := store.Put(ctx, ReportPrefix+r.dir+"/"+name+".csv", &buf); err != nil {
			return batch.Finished, err
		}
		sc.Counts.Read += int64(len(rows))
		sc.Counts.Write++
		sc.Context["next"] = end.Format(time.RFC3339)
		if end.Before(to) {
			return batch.Continuable, nil
		}
		return batch.Finished, nil
	}
}

// ListReports lists the statistics reports in store.
func ListReports(ctx context.Context, store storage.Store) ([]storage.Info, error) {
	return store.List(ctx, ReportPrefix)
}

// BackfillStatistics launches make-statistics once for each of the days
// days before now's day (the gym's calendar days, Asia/Seoul), oldest
// first, and returns the executions' ids: a new gym's charts and console
// show a month, not an hour. A day already counted is ErrAlreadyComplete
// and skipped.
func BackfillStatistics(ctx context.Context, eng *batch.Engine, now time.Time, days int) ([]int64, error) {
	today := now.In(models.Seoul)
	today = time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, models.Seoul)
	var ids []int64
	for d := days; d >= 1; d-- {
		from := today.AddDate(0, 0, -d)
		p := batch.Params{
			ParamFrom:        {Value: from.UTC().Format(time.RFC3339), Identifying: true},
			ParamTo:          {Value: from.AddDate(0, 0, 1).UTC().Format(time.RFC3339), Identifying: true},
			batch.ParamRunAt: {Value: from.AddDate(0, 0, 1).UTC().Format(time.RFC3339), Identifying: true},
		}
		je, err := eng.Launch(ctx, JobMakeStatistics, p)
		if errors.Is(err, batch.ErrAlreadyComplete) {
			continue
		}
		if err != nil {
			return ids, fmt.Errorf("backfill statistics for %s: %w", from.Format("2006-01-02"), err)
		}
		ids = append(ids, je.JobExecutionID)
	}
	return ids, nil
}
