package batch

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// The job repository is bounded: finished work older than a retention is
// purged, instance by instance, so the repository holds about a
// retention's worth of executions however long the fleet runs.

// PurgeResult says what a purge deleted, or with a dry run would delete.
type PurgeResult struct {
	Instances  int64 `json:"instances"`
	Executions int64 `json:"executions"`
	Steps      int64 `json:"steps"`
}

func (r *PurgeResult) add(o PurgeResult) {
	r.Instances += o.Instances
	r.Executions += o.Executions
	r.Steps += o.Steps
}

// PurgeBatch is how many job instances one purge transaction deletes.
const PurgeBatch = 1000

// purgeable selects (LIMIT ?) the instances whose every execution ended
// before the cutoff and whose last execution is COMPLETED or ABANDONED
// (those are final: nothing can follow them). An instance whose last
// execution FAILED or STOPPED is kept whole: it can still be restarted,
// and a restart reads its earlier executions (completed steps, partition
// checkpoints). A running execution has no end time, so its instance is
// never chosen. Read through batch_job_execution_final_idx.
const purgeable = `SELECT e.job_instance_id FROM batch_job_execution e
	WHERE e.status IN ('COMPLETED', 'ABANDONED') AND e.end_time < ?
	  AND NOT EXISTS (SELECT 1 FROM batch_job_execution x WHERE x.job_instance_id = e.job_instance_id
	      AND (x.end_time IS NULL OR x.end_time >= ?))
	ORDER BY e.end_time LIMIT ?`

// Purge deletes from the repository every job instance whose executions
// all ended before before and whose last execution is COMPLETED or
// ABANDONED, with its executions, their parameters and contexts, their
// step executions, step contexts and skipped items; then instances left
// with no execution. It works in transactions of PurgeBatch instances, so
// it holds no lock for long. With dryRun it counts what it would delete
// and deletes nothing. An export that named a purged execution keeps its
// row and file (its job_execution_id becomes NULL).
func Purge(ctx context.Context, db *bun.DB, before time.Time, dryRun bool) (PurgeResult, error) {
	if dryRun {
		return purgeCount(ctx, db, before)
	}
	var total PurgeResult
	for {
		var r PurgeResult
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			r, err = PurgeStep(ctx, tx, before, PurgeBatch)
			return err
		})
		if err != nil {
			return total, err
		}
		total.add(r)
		if r.Instances == 0 {
			return total, nil
		}
	}
}

// PurgeStep purges, in tx, up to limit instances as Purge does; when none
// is left, it deletes the instances left with no execution instead (their
// count is the result's Instances). Called once a transaction until it
// returns no instance, it purges everything due.
func PurgeStep(ctx context.Context, tx bun.IDB, before time.Time, limit int) (PurgeResult, error) {
	var r PurgeResult
	var ids []int64
	if err := tx.NewRaw(purgeable, before, before, limit).Scan(ctx, &ids); err != nil {
		return r, fmt.Errorf("purge: choose instances: %w", err)
	}
	if len(ids) == 0 {
		res, err := tx.NewRaw(`DELETE FROM batch_job_instance i WHERE i.create_time < ?
			AND NOT EXISTS (SELECT 1 FROM batch_job_execution e WHERE e.job_instance_id = i.job_instance_id)`, before).Exec(ctx)
		if err != nil {
			return r, fmt.Errorf("purge: instances without executions: %w", err)
		}
		r.Instances, _ = res.RowsAffected()
		return r, nil
	}
	arr := pgdialect.Array(ids)
	// One statement for the steps: a partition and its parent go together
	// (the self-reference is checked at the end of the statement).
	steps, err := tx.NewRaw(`DELETE FROM batch_step_execution s USING batch_job_execution e
		WHERE s.job_execution_id = e.job_execution_id AND e.job_instance_id = ANY(?)`, arr).Exec(ctx)
	if err != nil {
		return r, fmt.Errorf("purge: step executions: %w", err)
	}
	execs, err := tx.NewRaw(`DELETE FROM batch_job_execution WHERE job_instance_id = ANY(?)`, arr).Exec(ctx)
	if err != nil {
		return r, fmt.Errorf("purge: job executions: %w", err)
	}
	insts, err := tx.NewRaw(`DELETE FROM batch_job_instance WHERE job_instance_id = ANY(?)`, arr).Exec(ctx)
	if err != nil {
		return r, fmt.Errorf("purge: job instances: %w", err)
	}
	r.Steps, _ = steps.RowsAffected()
	r.Executions, _ = execs.RowsAffected()
	r.Instances, _ = insts.RowsAffected()
	return r, nil
}

// purgeCount counts what Purge would delete.
func purgeCount(ctx context.Context, db bun.IDB, before time.Time) (PurgeResult, error) {
	var r PurgeResult
	err := db.NewRaw(`WITH i AS (`+purgeable+`)
		SELECT (SELECT count(*) FROM i) AS instances,
			(SELECT count(*) FROM batch_job_execution e WHERE e.job_instance_id IN (SELECT job_instance_id FROM i)) AS executions,
			(SELECT count(*) FROM batch_step_execution s JOIN batch_job_execution e USING (job_execution_id)
				WHERE e.job_instance_id IN (SELECT job_instance_id FROM i)) AS steps`,
		before, before, int64(1)<<62).Scan(ctx, &r.Instances, &r.Executions, &r.Steps)
	if err != nil {
		return r, fmt.Errorf("purge: count: %w", err)
	}
	return r, nil
}
