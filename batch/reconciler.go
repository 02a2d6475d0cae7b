package batch

import (
	"context"
	"fmt"
	"time"

)

// Reconcile re-drives running executions that have made no progress for
// staleAfter (no update to the execution or any of its steps): their tasks
// may have been lost with Redis. It re-enqueues what each needs — the job
// task, unfinished partitions, a due aggregation, the next step — under the
// same deterministic task IDs, so work still in Redis is not doubled, and
// duplicates that do run are stopped by the version fence. It returns how
// many executions it re-drove.
func (e *Engine) Reconcile(ctx context.Context, staleAfter time.Duration) (int, error) {
	var ids []int64
	err := e.db.NewRaw(`SELECT je.job_execution_id FROM batch_job_execution je
		WHERE je.status IN (?, ?, ?)
		  AND greatest(je.last_updated, coalesce((SELECT max(s.last_updated) FROM batch_step_execution s
		      WHERE s.job_execution_id = je.job_execution_id), je.last_updated)) < now() - ?::interval
		ORDER BY je.job_execution_id`,
		StatusStarting, StatusStarted, StatusStopping, fmt.Sprintf("%d milliseconds", staleAfter.Milliseconds())).Scan(ctx, &ids)
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

func (e *Engine) redrive(ctx context.Context, jeID int64) error {
	je, err := loadJobExecution(ctx, e.db, jeID)
	if err != nil {
		return err
	}
	e.log.InfoContext(ctx, "reconcile: re-driving stale execution", "job", je.Instance.JobName, "job_execution_id", jeID, "status", je.Status)
	// Mark it touched so the next pass waits another staleAfter.
	if _, err := e.db.NewUpdate().Model((*JobExecution)(nil)).Set("last_updated = now()").
		Where("job_execution_id = ?", jeID).Exec(ctx); err != nil {
		return err
	}
	if je.Status == StatusStarting {
		return e.enqueueJob(ctx, jeID)
	}
	steps, err := topSteps(ctx, e.db, jeID)
	if err != nil {
		return err
	}
	for name, se := range steps {
		if !Running(se.Status) {
			continue
		}
		switch {
		case se.PartitionsTotal == nil:
			// A tasklet, or a chunk step not split yet: its step task redoes it.
			if err := e.enqueueStep(ctx, jeID, name); err != nil {
				return err
			}
		case se.PartitionsDone >= *se.PartitionsTotal:
			if err := e.enqueueStepDone(ctx, se.StepExecutionID); err != nil {
				return err
			}
		default:
			var pending []int64
			if err := e.db.NewSelect().Model((*StepExecution)(nil)).Column("step_execution_id").
				Where("parent_step_execution_id = ? AND status IN (?, ?)", se.StepExecutionID, StatusStarting, StatusStarted).
				Scan(ctx, &pending); err != nil {
				return err
			}
			for _, id := range pending {
				if err := e.enqueuePartition(ctx, id); err != nil {
					return err
				}
			}
		}
	}
	return e.advance(ctx, jeID)
}

// RunReconciler calls Reconcile every interval until ctx ends.
func (e *Engine) RunReconciler(ctx context.Context, interval, staleAfter time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := e.Reconcile(ctx, staleAfter); err != nil {
				e.log.WarnContext(ctx, "reconcile", "err", err)
			} else if n > 0 {
				e.log.InfoContext(ctx, "reconcile: re-drove executions", "count", n)
			}
		}
	}
}
