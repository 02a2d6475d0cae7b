package benchmark

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/tasks"
)

// exportBaseline is the physical limit of a bookings export: Postgres
// writing the same rows, in id order, as CSV into one file with COPY.
const exportBaseline = `COPY (SELECT b.id, b.user_id, u.name, b.pass_id, b.status, b.attended, b.used_pass, b.started_at, b.ended_at, b.cancelled_at
	FROM booking b JOIN users u ON u.id = b.user_id ORDER BY b.id) TO STDOUT (FORMAT csv, HEADER)`

// exports measures the export job on every booking, to CSV and to XLSX,
// with each worker count, against COPY to a file. A run's end state is
// right when the export COMPLETED with every row and, for CSV, its bytes
// equal the first run's (the output does not depend on the worker count).
func (r *runner) exports(ctx context.Context) ([]Result, error) {
	var out []Result
	for _, format := range []string{"csv", "xlsx"} {
		name := "export-" + format
		r.log("%s: COPY to a file", name)
		base, err := r.copyBaseline(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("copy baseline: %w", err)
		}
		out = append(out, base)
		firstSum := ""
		for _, w := range r.o.Workers {
			if err := r.flushRedis(ctx); err != nil {
				return nil, err
			}
			r.log("%s: export job with %d worker process(es)", name, w)
			e, _, err := tasks.RequestExport(ctx, r.db, tasks.ExportRequest{Kind: "bookings", Format: format, Force: true}, "bench", time.Now())
			if err != nil {
				return nil, err
			}
			res, err := r.job(ctx, tasks.JobExport, w, batch.Params{tasks.ParamExportID: {Value: strconv.FormatInt(e.ID, 10), Identifying: true}})
			if err != nil {
				return nil, err
			}
			if err := r.db.NewSelect().Model(e).WherePK().Scan(ctx); err != nil {
				return nil, err
			}
			res.Scenario, res.Items = name, e.WrittenRows
			res.ItemsPerSec = float64(e.WrittenRows) / res.Seconds
			sum := ""
			if e.SHA256 != nil {
				sum = *e.SHA256
			}
			if firstSum == "" {
				firstSum = sum
			}
			res.StateOK = e.Status == models.ExportCompleted && e.WrittenRows == base.Items && (format == "xlsx" || sum == firstSum)
			size := int64(0)
			if e.SizeBytes != nil {
				size = *e.SizeBytes
			}
			res.Note = fmt.Sprintf("%.1f MB file", float64(size)/1e6)
			out = append(out, res)
		}
	}
	return out, nil
}

// copyBaselineRuns is how many times the COPY runs; the fastest counts.
// On the 2-core machine one COPY of 1M bookings took 1.1 s in one run and
// 1.7-1.9 s in the next, so a single run made the job's ratio swing by
// half; the fastest of three is the stricter baseline.
const copyBaselineRuns = 3

// copyBaseline runs exportBaseline into a file under the storage dir,
// copyBaselineRuns times, and reports the fastest.
func (r *runner) copyBaseline(ctx context.Context, name string) (Result, error) {
	var best Result
	for i := 0; i < copyBaselineRuns; i++ {
		res, err := r.copyOnce(ctx, name)
		if err != nil {
			return Result{}, err
		}
		if i == 0 || res.Seconds < best.Seconds {
			best = res
		}
	}
	best.Note += fmt.Sprintf(", fastest of %d", copyBaselineRuns)
	return best, nil
}

// copyOnce runs exportBaseline once into a file and syncs it.
func (r *runner) copyOnce(ctx context.Context, name string) (Result, error) {
	path := filepath.Join(r.storageDir, "copy-baseline.csv")
	f, err := os.Create(path)
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(path)
	defer f.Close()
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	start := time.Now()
	var rows int64
	err = conn.Raw(func(dc any) error {
		tag, err := dc.(*stdlib.Conn).Conn().PgConn().CopyTo(ctx, f, exportBaseline)
		rows = tag.RowsAffected()
		return err
	})
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return Result{}, err
	}
	took := time.Since(start).Seconds()
	return Result{Scenario: name, Variant: "set-based SQL", Items: rows, Seconds: took, ItemsPerSec: float64(rows) / took, StateOK: true,
		Note: "COPY (SELECT … ORDER BY id) TO STDOUT into a file"}, nil
}
