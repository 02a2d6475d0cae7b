package batch

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// handleStepDone aggregates a partitioned step once all its partitions have
// finished, then advances the flow.
func (e *Engine) handleStepDone(ctx context.Context, t *asynq.Task) error {
	var p stepExecPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	return e.stepDone(ctx, p.StepExecutionID)
}

// stepDoneIfDue runs stepDone when every partition of step seID has
// ended and the step still runs.
func (e *Engine) stepDoneIfDue(ctx context.Context, seID int64) error {
	var due bool
	if err := e.db.NewRaw(`SELECT status IN (?, ?) AND partitions_total IS NOT NULL AND partitions_done >= partitions_total
		FROM batch_step_execution WHERE step_execution_id = ?`, StatusStarting, StatusStarted, seID).Scan(ctx, &due); err != nil {
		return fmt.Errorf("is step %d due: %w", seID, err)
	}
	if !due {
		return nil
	}
	return e.stepDoneHere(ctx, seID)
}

// stepDoneHere is stepDone run by the worker that ended the step's last
// partition (in a span of its own, as the batch:step-done task would be).
func (e *Engine) stepDoneHere(ctx context.Context, seID int64) error {
	ctx, span := tracer().Start(ctx, "batch.step-done", trace.WithAttributes(attribute.Int64("batch.step_execution_id", seID), attribute.Bool("batch.inline", true)))
	err := e.stepDone(ctx, seID)
	endSpan(span, err)
	span.End()
	return err
}

// stepDone aggregates partitioned step seID once all its partitions have
// finished (a repeat finds it aggregated), then advances the flow. The
// batch:step-done task runs it, and so does a worker that has just run a
// step's only partition itself.
func (e *Engine) stepDone(ctx context.Context, seID int64) error {
	se, err := loadStepExecution(ctx, e.db, seID)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	env, err := e.loadStepEnv(ctx, e.db, se.JobExecutionID, se.StepName)
	if err != nil {
		return err
	}
	var status Status
	err = e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// The lock waits for the transaction that completed the barrier.
		if err := tx.NewSelect().Model(se).WherePK().For("UPDATE").Scan(ctx); err != nil {
			return err
		}
		if !Running(se.Status) || se.PartitionsTotal == nil || se.PartitionsDone < *se.PartitionsTotal {
			return nil // aggregated already, or not all partitions done
		}
		if status, err = aggregate(ctx, tx, se); err != nil {
			return err
		}
		return runAfterStep(ctx, tx, env.step, se, env.params)
	})
	if err != nil {
		return err
	}
	if status != "" {
		e.m.ended(env.job.Name, se.StepName, status, se.StartTime, se.EndTime)
		e.log.InfoContext(ctx, "step finished", "job", env.job.Name, "job_execution_id", se.JobExecutionID,
			"step", se.StepName, "step_execution_id", se.StepExecutionID, "status", status,
			"read", se.ReadCount, "write", se.WriteCount, "filter", se.FilterCount,
			"skip", se.ReadSkipCount+se.ProcessSkipCount+se.WriteSkipCount)
	}
	// The next step, when it is a chunk step alone, splits right here.
	return e.advanceFlow(ctx, se.JobExecutionID, true)
}

// aggregate sums a partitioned step's partitions into it and ends it:
// FAILED if any partition failed, STOPPED if any stopped, else COMPLETED.
func aggregate(ctx context.Context, tx bun.Tx, se *StepExecution) (Status, error) {
	var agg struct {
		Read, Write, Filter, ReadSkip, WriteSkip, ProcessSkip, Commit, Rollback int64
		Failed, Stopped                                                         int
		Msg                                                                     string
	}
	if err := tx.NewRaw(`SELECT coalesce(sum(read_count),0) AS read, coalesce(sum(write_count),0) AS write,
			coalesce(sum(filter_count),0) AS filter, coalesce(sum(read_skip_count),0) AS read_skip,
			coalesce(sum(write_skip_count),0) AS write_skip, coalesce(sum(process_skip_count),0) AS process_skip,
			coalesce(sum(commit_count),0) AS commit, coalesce(sum(rollback_count),0) AS rollback,
			count(*) FILTER (WHERE status = ?) AS failed, count(*) FILTER (WHERE status IN (?, ?)) AS stopped,
			coalesce(array_to_string((array_agg(partition_key || ': ' || exit_message ORDER BY step_execution_id) FILTER (WHERE status = ?))[1:3], '; '), '') AS msg
		FROM batch_step_execution WHERE parent_step_execution_id = ?`,
		StatusFailed, StatusStopped, StatusAbandoned, StatusFailed, se.StepExecutionID).Scan(ctx, &agg); err != nil {
		return "", fmt.Errorf("aggregate partitions of %d: %w", se.StepExecutionID, err)
	}
	status, msg := StatusCompleted, ""
	switch {
	case agg.Failed > 0:
		status, msg = StatusFailed, fmt.Sprintf("%d of %d partitions failed: %s", agg.Failed, *se.PartitionsTotal, agg.Msg)
	case agg.Stopped > 0:
		status, msg = StatusStopped, fmt.Sprintf("%d of %d partitions stopped", agg.Stopped, *se.PartitionsTotal)
	}
	if err := transition(tx.NewUpdate().Model(se), status, msg).
		Set("read_count = ?", agg.Read).Set("write_count = ?", agg.Write).Set("filter_count = ?", agg.Filter).
		Set("read_skip_count = ?", agg.ReadSkip).Set("write_skip_count = ?", agg.WriteSkip).
		Set("process_skip_count = ?", agg.ProcessSkip).Set("commit_count = ?", agg.Commit).Set("rollback_count = ?", agg.Rollback).
		WherePK().Returning("*").Scan(ctx); err != nil {
		return "", fmt.Errorf("finish step %d: %w", se.StepExecutionID, err)
	}
	return status, nil
}
