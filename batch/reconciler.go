package batch

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// The reconciler keeps every running execution driven with no human
// action. It has two passes:
//
//   - Failover (fast): partitions and tasklets held by a worker whose
//     heartbeat is older than FailoverAfter (dead, frozen or cut off from
//     Postgres) are released and re-enqueued under their next generation.
//   - Reconcile (slow): executions whose rows have not moved for StaleAfter
//     (their tasks lost with Redis, archived after exhausting their
//     retries, or never enqueued) are re-driven: every unfinished piece of
//     work gets a task under a new generation.
//
// A new generation means a new task ID, so the re-drive reaches the queue
// even where an archived or dead task still holds the old one; a delivery
// of an older generation finds it superseded and leaves. Rows an open
// transaction holds (a frozen worker's) are skipped (SKIP LOCKED) until
// Postgres ends that transaction (idle_in_transaction_session_timeout).

// ReconcileOptions tune RunReconciler. Zero values take the defaults.
type ReconcileOptions struct {
	// Every is how often both passes run. Default 2s.
	Every time.Duration
	// StaleAfter is how long an execution may make no progress before it is
	// re-driven. Default 2m.
	StaleAfter time.Duration
	// FailoverAfter is how old a worker's heartbeat may be before what it
	// holds is re-driven. Default 5s (workers beat every second).
	FailoverAfter time.Duration
}

func (o *ReconcileOptions) defaults() {
	if o.Every <= 0 {
		o.Every = 2 * time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 2 * time.Minute
	}
	if o.FailoverAfter <= 0 {
		o.FailoverAfter = 5 * time.Second
	}
}

// RunReconciler runs Failover and Reconcile every o.Every until ctx ends.
func (e *Engine) RunReconciler(ctx context.Context, o ReconcileOptions) {
	o.defaults()
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := e.Failover(ctx, o.FailoverAfter); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "failover", "err", err)
		} else if n > 0 {
			e.log.InfoContext(ctx, "failover: re-drove the work of dead workers", "count", n)
		}
		if n, err := e.Reconcile(ctx, o.StaleAfter); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "reconcile", "err", err)
		} else if n > 0 {
			e.log.InfoContext(ctx, "reconcile: re-drove stale executions", "count", n)
		}
	}
}

// heldStep is a running step execution the reconciler re-drives.
type heldStep struct {
	ID         int64  `bun:"step_execution_id"`
	JobName    string `bun:"job_name"`
	JobExecID  int64  `bun:"job_execution_id"`
	StepName   string `bun:"step_name"`
	Parent     *int64 `bun:"parent_step_execution_id"`
	Generation int    `bun:"generation"`
	JobGen     int    `bun:"job_generation"`
	// Trace is the execution's traceparent (see JobExecution.TraceContext).
	Trace *string `bun:"trace_context"`
}

// Failover re-drives the partitions and tasklets held by workers whose
// heartbeat is older than deadAfter, or that left no heartbeat at all, and
// returns how many it re-drove. It first ends the database sessions of the
// dead workers (by their application_name, see WorkerOptions.ID), so the
// row locks a frozen worker holds are released at once instead of after
// the idle-transaction timeout.
func (e *Engine) Failover(ctx context.Context, deadAfter time.Duration) (int, error) {
	if err := e.terminateDead(ctx, deadAfter); err != nil {
		e.log.WarnContext(ctx, "failover: could not end the sessions of dead workers (their locks go with the idle timeout)", "err", err)
	}
	var n int
	err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var held []heldStep
		if err := tx.NewRaw(`SELECT s.step_execution_id, i.job_name, s.job_execution_id, s.step_name, s.parent_step_execution_id,
				s.generation, j.generation AS job_generation, j.trace_context
			FROM batch_step_execution s
			JOIN batch_job_execution j ON j.job_execution_id = s.job_execution_id
			JOIN batch_job_instance i ON i.job_instance_id = j.job_instance_id
			LEFT JOIN batch_worker w ON w.worker_id = s.worker_id
			WHERE s.status IN (?, ?) AND s.worker_id IS NOT NULL
			  AND (w.worker_id IS NULL OR w.heartbeat_at < now() - ?::interval)
			ORDER BY s.step_execution_id
			FOR UPDATE OF s SKIP LOCKED`, StatusStarting, StatusStarted, interval(deadAfter)).Scan(ctx, &held); err != nil {
			return fmt.Errorf("find the work of dead workers: %w", err)
		}
		for _, h := range held {
			if err := e.redriveHeld(ctx, tx, h); err != nil {
				return err
			}
		}
		n = len(held)
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Forget workers long gone (their partitions were re-driven above).
	if _, err := e.db.NewDelete().Model((*WorkerInfo)(nil)).
		Where("heartbeat_at < now() - ?::interval", interval(100*deadAfter+time.Hour)).Exec(ctx); err != nil {
		return n, fmt.Errorf("forget dead workers: %w", err)
	}
	return n, nil
}

// terminateDead ends the sessions in this database of workers whose
// heartbeat is older than deadAfter, waiting up to a second for each. The
// sessions are chosen first and ended in a second statement: a function
// with effects in a WHERE clause may run for rows the clause then drops.
func (e *Engine) terminateDead(ctx context.Context, deadAfter time.Duration) error {
	var dead []struct {
		PID    int    `bun:"pid"`
		Worker string `bun:"worker_id"`
	}
	if err := e.db.NewRaw(`SELECT a.pid, w.worker_id FROM pg_stat_activity a
		JOIN batch_worker w ON w.worker_id = a.application_name
		WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND w.heartbeat_at < now() - ?::interval`,
		interval(deadAfter)).Scan(ctx, &dead); err != nil {
		return err
	}
	if len(dead) == 0 {
		return nil
	}
	pids := make([]int, len(dead))
	workers := make([]string, len(dead))
	for i, d := range dead {
		pids[i], workers[i] = d.PID, d.Worker
	}
	if _, err := e.db.NewRaw("SELECT pg_terminate_backend(pid, 1000) FROM unnest(?::int[]) AS pid", pgdialect.Array(pids)).Exec(ctx); err != nil {
		return err
	}
	e.log.InfoContext(ctx, "failover: ended the database sessions of dead workers", "sessions", len(pids),
		"workers", slices.Compact(slices.Sorted(slices.Values(workers))))
	return nil
}

// redriveHeld releases a locked running step execution in tx and enqueues
// its next generation in the same transaction.
func (e *Engine) redriveHeld(ctx context.Context, tx bun.Tx, h heldStep) error {
	gen, err := releaseForRedrive(ctx, tx, h.ID)
	if err != nil {
		return err
	}
	ctx = joinTrace(ctx, h.Trace)
	e.log.InfoContext(ctx, "re-driving work", "job", h.JobName, "job_execution_id", h.JobExecID, "step", h.StepName,
		"step_execution_id", h.ID, "generation", gen)
	if h.Parent != nil {
		return e.enqueuePartition(ctx, h.ID, gen)
	}
	return e.enqueueStep(ctx, h.JobExecID, h.JobGen, h.StepName, gen)
}

// Reconcile re-drives running executions that have made no progress for
// staleAfter (no update to the execution or any of its steps) and returns
// how many it re-drove.
func (e *Engine) Reconcile(ctx context.Context, staleAfter time.Duration) (int, error) {
	var ids []int64
	err := e.db.NewRaw(`SELECT je.job_execution_id FROM batch_job_execution je
		WHERE je.status IN (?, ?, ?)
		  AND greatest(je.last_updated, coalesce((SELECT max(s.last_updated) FROM batch_step_execution s
		      WHERE s.job_execution_id = je.job_execution_id), je.last_updated)) < now() - ?::interval
		ORDER BY je.job_execution_id`,
		StatusStarting, StatusStarted, StatusStopping, interval(staleAfter)).Scan(ctx, &ids)
	if err != nil {
		return 0, fmt.Errorf("reconcile: find stale executions: %w", err)
	}
	n := 0
	for _, id := range ids {
		if err := e.redrive(ctx, id); err != nil {
			e.log.WarnContext(ctx, "reconcile: re-drive failed", "job_execution_id", id, "err", err)
			continue
		}
		n++
	}
	return n, nil
}

// redrive gives every unfinished piece of a stale execution a task under a
// new generation, then advances it.
func (e *Engine) redrive(ctx context.Context, jeID int64) error {
	err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		je := new(JobExecution)
		if err := tx.NewRaw(`UPDATE batch_job_execution SET generation = generation + 1, last_updated = now()
			WHERE job_execution_id = ? AND status IN (?, ?, ?) RETURNING *`,
			jeID, StatusStarting, StatusStarted, StatusStopping).Scan(ctx, je); err != nil {
			return fmt.Errorf("bump generation of execution %d: %w", jeID, err)
		}
		ctx = joinTrace(ctx, je.TraceContext)
		e.log.InfoContext(ctx, "reconcile: re-driving stale execution", "job_execution_id", jeID, "status", je.Status, "generation", je.Generation)
		if je.Status == StatusStarting {
			return e.enqueueJob(ctx, je)
		}
		return e.redriveSteps(ctx, tx, je)
	})
	if err != nil {
		return err
	}
	return e.advance(ctx, jeID)
}

// redriveSteps re-enqueues, in tx, what each running step of je needs: its
// step task (a tasklet, or a chunk step not split yet), its unfinished
// partitions, or its aggregation.
func (e *Engine) redriveSteps(ctx context.Context, tx bun.Tx, je *JobExecution) error {
	var held []heldStep
	if err := tx.NewRaw(`SELECT s.step_execution_id, i.job_name, s.job_execution_id, s.step_name, s.parent_step_execution_id,
			s.generation, ? AS job_generation, j.trace_context
		FROM batch_step_execution s
		JOIN batch_job_execution j ON j.job_execution_id = s.job_execution_id
		JOIN batch_job_instance i ON i.job_instance_id = j.job_instance_id
		WHERE s.job_execution_id = ? AND s.status IN (?, ?)
		  AND (s.parent_step_execution_id IS NOT NULL OR s.partitions_total IS NULL)
		ORDER BY s.step_execution_id
		FOR UPDATE OF s SKIP LOCKED`, je.Generation, je.JobExecutionID, StatusStarting, StatusStarted).Scan(ctx, &held); err != nil {
		return fmt.Errorf("find the unfinished work of execution %d: %w", je.JobExecutionID, err)
	}
	for _, h := range held {
		if err := e.redriveHeld(ctx, tx, h); err != nil {
			return err
		}
	}
	var due []int64
	if err := tx.NewSelect().Model((*StepExecution)(nil)).Column("step_execution_id").
		Where("job_execution_id = ? AND parent_step_execution_id IS NULL AND status IN (?, ?)", je.JobExecutionID, StatusStarting, StatusStarted).
		Where("partitions_total IS NOT NULL AND partitions_done >= partitions_total").Scan(ctx, &due); err != nil {
		return fmt.Errorf("find due aggregations of execution %d: %w", je.JobExecutionID, err)
	}
	for _, id := range due {
		if err := e.enqueueStepDone(ctx, id, je.Generation); err != nil {
			return err
		}
	}
	return nil
}

// interval formats d for a Postgres ?::interval parameter.
func interval(d time.Duration) string {
	return fmt.Sprintf("%d milliseconds", d.Milliseconds())
}
