package benchmark

// The engine's own costs, measured beside the jobs: the chunked-SQL limit
// (the same chunks in plain SQL, as many sessions as cores: what a chunked
// job can reach here at best) and a small job's fixed cost.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/tasks"
)

// chunkPlan is how a scenario's work splits into the chunks the job
// makes, for the chunked-SQL limit: bounds returns the chunks' key
// boundaries, and steps are the statements each chunk runs (?0 run.at, ?1
// and ?2 the chunk's key range), one step after the other.
type chunkPlan struct {
	bounds string
	steps  []string
}

// useChunks cuts use-passes as the job does: by pass, about 1,000
// bookings a chunk, whole passes.
var useChunks = chunkPlan{
	bounds: `SELECT DISTINCT pass_id FROM (SELECT pass_id, row_number() OVER (ORDER BY pass_id, id) AS k FROM booking
		WHERE status = 'COMPLETED' AND NOT used_pass AND ended_at <= ?0) x WHERE k % 1000 = 1 ORDER BY 1`,
	steps: []string{`WITH b AS (SELECT id, pass_id FROM booking WHERE status = 'COMPLETED' AND NOT used_pass AND ended_at <= ?0 AND pass_id >= ?1 AND pass_id < ?2),
		d AS (SELECT pass_id, count(*) AS n FROM b GROUP BY pass_id),
		p AS (UPDATE pass SET remaining_count = pass.remaining_count - d.n FROM d WHERE pass.id = d.pass_id AND pass.remaining_count IS NOT NULL)
		UPDATE booking SET used_pass = true FROM b WHERE booking.id = b.id`},
}

// expireChunks cuts expire-passes by 1,000 pass ids.
var expireChunks = chunkPlan{
	bounds: `SELECT g FROM generate_series((SELECT min(id) FROM pass), (SELECT max(id) FROM pass), 1000) g WHERE ?0::timestamptz IS NOT NULL`,
	steps: []string{
		"UPDATE pass SET status = 'EXPIRED', expired_at = ?0 WHERE status = 'PROGRESSED' AND (ended_at <= ?0 OR remaining_count = 0) AND id >= ?1 AND id < ?2",
		"UPDATE pass SET status = 'PROGRESSED' WHERE status = 'READY' AND started_at <= ?0 AND id >= ?1 AND id < ?2",
	},
}

// chunkedSQL runs the plan's chunks in plain SQL from as many sessions as
// the machine has cores, each chunk a statement in its own transaction.
func (r *runner) chunkedSQL(ctx context.Context, sc scenario) (Result, error) {
	var bounds []int64
	if err := r.db.NewRaw(sc.chunks.bounds, r.runAt).Scan(ctx, &bounds); err != nil {
		return Result{}, fmt.Errorf("chunk bounds: %w", err)
	}
	bounds = append(bounds, 1<<62)
	sessions := runtime.NumCPU()
	r.log("%s: chunked SQL, %d chunks from %d sessions", sc.name, len(bounds)-1, sessions)
	start := time.Now()
	var items int64
	for i, step := range sc.chunks.steps {
		n, err := runChunks(ctx, r.db, step, r.runAt, bounds, sessions)
		if err != nil {
			return Result{}, err
		}
		if i == 0 || sc.name == tasks.JobExpirePasses {
			items += n
		}
	}
	res := Result{Scenario: sc.name, Variant: "chunked SQL", Workers: sessions, Items: items, Seconds: time.Since(start).Seconds(),
		Note: fmt.Sprintf("%d chunks, %d sessions", len(bounds)-1, sessions)}
	res.ItemsPerSec = float64(items) / res.Seconds
	return res, nil
}

// runChunks runs stmt over each range [bounds[i], bounds[i+1]) from
// sessions goroutines and returns the rows it changed.
func runChunks(ctx context.Context, db *bun.DB, stmt string, at time.Time, bounds []int64, sessions int) (int64, error) {
	var mu sync.Mutex
	var total int64
	var first error
	next := 0
	var wg sync.WaitGroup
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(bounds)-1 || ctx.Err() != nil {
					return
				}
				res, err := db.NewRaw(stmt, at, bounds[i], bounds[i+1]).Exec(ctx)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				if err == nil {
					n, _ := res.RowsAffected()
					total += n
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return total, first
}

// FixedCost is a small job's launch → end, over several runs.
type FixedCost struct {
	Runs     int           `json:"runs"`
	Rows     int           `json:"rows"`
	P50, Max time.Duration `json:"-"`
	Each     []time.Duration
}

// fixedCost measures launch → COMPLETED, from the job repository's times,
// of use-passes over 100 bookings in one partition with one idle worker
// process, runs times.
func (r *runner) fixedCost(ctx context.Context, runs int) (*FixedCost, error) {
	if err := r.reset(ctx); err != nil {
		return nil, err
	}
	const rows = 100
	// Every booking is deducted but runs × 100 of them, given back 100 at a time.
	var ids []int64
	if err := r.db.NewRaw(`WITH k AS (SELECT id FROM booking WHERE status = 'COMPLETED' AND NOT used_pass AND ended_at <= ? ORDER BY id LIMIT ?)
		SELECT id FROM k ORDER BY id`, r.runAt, runs*rows).Scan(ctx, &ids); err != nil {
		return nil, err
	}
	for _, q := range []string{`UPDATE booking SET used_pass = true WHERE status = 'COMPLETED' AND NOT used_pass`, "VACUUM ANALYZE booking"} {
		if _, err := r.db.ExecContext(ctx, q); err != nil { // vacuumed: the index of bookings to deduct holds only live ones
			return nil, err
		}
	}
	stop, err := r.startWorkers(1, r.o.WorkerBin)
	if err != nil {
		return nil, err
	}
	defer stop()
	time.Sleep(2 * time.Second) // an idle fleet: registered and polling
	fc := &FixedCost{Runs: runs, Rows: rows}
	for i := 0; i < runs && (i+1)*rows <= len(ids); i++ {
		batchIDs := ids[i*rows : (i+1)*rows]
		if _, err := r.db.NewRaw("UPDATE booking SET used_pass = false WHERE id IN (?)", bun.In(batchIDs)).Exec(ctx); err != nil {
			return nil, err
		}
		r.seq++
		je, err := r.engine.Launch(ctx, tasks.JobUsePasses, batch.Params{
			batch.ParamRunAt: {Value: r.runAt.Format(time.RFC3339), Identifying: true},
			batch.ParamRunID: {Value: strconv.Itoa(r.seq), Identifying: true},
		})
		if err != nil {
			return nil, err
		}
		d, err := r.waitJob(ctx, je.JobExecutionID)
		if err != nil {
			return nil, err
		}
		if d.Status != batch.StatusCompleted || d.WriteCount != rows || d.EndTime == nil {
			return nil, fmt.Errorf("small job %d: %s, %d written", d.JobExecutionID, d.Status, d.WriteCount)
		}
		fc.Each = append(fc.Each, d.EndTime.Sub(d.CreateTime))
		time.Sleep(300 * time.Millisecond) // idle again
	}
	sorted := slices.Clone(fc.Each)
	slices.Sort(sorted)
	fc.P50, fc.Max = sorted[len(sorted)/2], sorted[len(sorted)-1]
	return fc, nil
}
