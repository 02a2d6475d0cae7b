package batch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// startPartitions splits a chunk step into its partitions once, then
// enqueues every queued partition still to run, each under its generation
// (the others wait their turn: see ChunkStep.AtOnce). A step of one
// partition is run right here instead, and aggregated: a small job then
// costs no hop through Redis per step (a crash meanwhile is failed over as
// any partition's, and the step task itself is redelivered).
func (e *Engine) startPartitions(ctx context.Context, env *stepEnv, se *StepExecution) error {
	if se.PartitionsTotal == nil {
		if err := e.split(ctx, env, se); err != nil {
			var sf *stepFailure
			if errors.As(err, &sf) {
				return e.failStep(ctx, se.StepExecutionID, sf.err)
			}
			return err
		}
	}
	var pending []struct {
		ID         int64 `bun:"step_execution_id"`
		Generation int   `bun:"generation"`
	}
	if err := e.db.NewSelect().Model((*StepExecution)(nil)).Column("step_execution_id", "generation").
		Where("parent_step_execution_id = ? AND status IN (?, ?) AND queued_at IS NOT NULL", se.StepExecutionID, StatusStarting, StatusStarted).
		Order("step_execution_id").Scan(ctx, &pending); err != nil {
		return fmt.Errorf("list partitions of %s: %w", env.step.name, err)
	}
	if se.PartitionsTotal != nil && *se.PartitionsTotal == 1 && len(pending) == 1 {
		r, err := e.claimPartition(ctx, stepExecPayload{StepExecutionID: pending[0].ID, Generation: pending[0].Generation})
		if err != nil {
			return err
		}
		if r != nil {
			release := hold(ctx, r.se.StepExecutionID)
			err = r.run(ctx)
			release()
			if err != nil {
				return err
			}
		}
		return e.stepDoneHere(ctx, se.StepExecutionID)
	}
	for _, p := range pending {
		if err := e.enqueuePartition(ctx, p.ID, p.Generation); err != nil {
			return err
		}
	}
	if se.PartitionsTotal != nil && se.PartitionsDone >= *se.PartitionsTotal {
		return e.enqueueStepDone(ctx, se.StepExecutionID, env.je.Generation)
	}
	return nil
}

// split creates all of a step's partitions in one transaction, and starts
// the step with its before-step listeners; a second delivery finds it split.
func (e *Engine) split(ctx context.Context, env *stepEnv, se *StepExecution) error {
	return e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(se).Where("step_execution_id = ?", se.StepExecutionID).For("UPDATE").Scan(ctx); err != nil {
			return err
		}
		if se.PartitionsTotal != nil {
			return nil // another delivery split it first
		}
		children, err := e.planPartitions(ctx, tx, env, se)
		if err != nil {
			return err
		}
		queueFirst(children, e.atOnce(env.step))
		done, err := createPartitions(ctx, tx, children)
		if err != nil {
			return fmt.Errorf("create partitions of %s: %w", env.step.name, err)
		}
		total := len(children)
		se.PartitionsTotal, se.PartitionsDone, se.Status = &total, done, StatusStarted
		if _, err := tx.NewUpdate().Model(se).
			Set("partitions_total = ?", total).Set("partitions_done = ?", done).Set("status = ?", StatusStarted).
			Set("start_time = clock_timestamp()").Set("version = version + 1").Set("last_updated = clock_timestamp()").
			WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("start step %s: %w", env.step.name, err)
		}
		if err := runStepListeners(ctx, tx, env.step, false, se, env.params); err != nil {
			return err
		}
		e.log.InfoContext(ctx, "step partitioned", "job", env.job.Name, "job_execution_id", se.JobExecutionID,
			"step", se.StepName, "step_execution_id", se.StepExecutionID, "partitions", total, "already_completed", done)
		return nil
	})
}

// queueFirst marks the first atOnce of the partitions still to run queued
// (the ones done already are queued too: they never run).
func queueFirst(children []plannedPartition, atOnce int) {
	now := time.Now()
	for _, c := range children {
		if c.Status == StatusCompleted || atOnce > 0 {
			c.QueuedAt = &now
		}
		if c.Status != StatusCompleted {
			atOnce--
		}
	}
}

// atOnce is how many partitions of step run at once.
func (e *Engine) atOnce(step *Step) int {
	if step.atOnce > 0 {
		return step.atOnce
	}
	return e.opts.PartitionsAtOnce
}

// createPartitions inserts the planned partitions with their contexts and
// returns how many are COMPLETED already (by an earlier execution).
func createPartitions(ctx context.Context, tx bun.Tx, children []plannedPartition) (done int, err error) {
	if len(children) == 0 {
		return 0, nil
	}
	rows := make([]*StepExecution, len(children))
	for i, c := range children {
		rows[i] = c.StepExecution
		if c.Status == StatusCompleted {
			done++
		}
	}
	if _, err := tx.NewInsert().Model(&rows).Returning("step_execution_id").Exec(ctx); err != nil {
		return 0, err
	}
	for i, r := range rows {
		if len(children[i].ctx) > 0 {
			if err := saveStepContext(ctx, tx, r.StepExecutionID, children[i].ctx); err != nil {
				return 0, err
			}
		}
	}
	return done, nil
}

type plannedPartition struct {
	*StepExecution
	ctx map[string]any
}

// planPartitions returns the child step executions of a new partitioned
// step: on a restart the previous execution's ranges, finished ones marked
// COMPLETED and the rest carrying their checkpoint; otherwise the
// partitioner's ranges.
func (e *Engine) planPartitions(ctx context.Context, tx bun.Tx, env *stepEnv, se *StepExecution) ([]plannedPartition, error) {
	prev, err := previousStep(ctx, tx, env.je, env.step.name)
	if err != nil {
		return nil, err
	}
	// A restart resumes the previous ranges, unless that execution of the
	// step completed (it runs again by AllowStartIfComplete): then every
	// row is read again, from new ranges, as Spring Batch re-runs it.
	if prev != nil && prev.PartitionsTotal != nil && prev.Status != StatusCompleted {
		return resumePartitions(ctx, tx, env, se, prev)
	}
	sc := env.stepContext(se, map[string]any{})
	ranges, err := env.step.part(ctx, tx, sc)
	if err != nil {
		if isInfra(ctx, err) {
			return nil, err
		}
		return nil, &stepFailure{fmt.Errorf("partition step %s: %w", env.step.name, err)}
	}
	out := make([]plannedPartition, 0, len(ranges))
	for i, r := range ranges {
		key := fmt.Sprintf("%s:partition-%04d", env.step.name, i)
		rs, re := r.Start, r.End
		out = append(out, plannedPartition{&StepExecution{
			StepName: partitionStepName(env.step.name, i), JobExecutionID: env.je.JobExecutionID, ParentStepExecutionID: &se.StepExecutionID,
			PartitionKey: &key, RangeStart: &rs, RangeEnd: &re, Status: StatusStarting, ExitCode: ExitExecuting,
		}, nil})
	}
	return out, nil
}

// resumePartitions plans a restarted step from the ranges of prev, its
// execution in the previous run.
func resumePartitions(ctx context.Context, tx bun.Tx, env *stepEnv, se, prev *StepExecution) ([]plannedPartition, error) {
	var olds []*StepExecution
	if err := tx.NewSelect().Model(&olds).Where("parent_step_execution_id = ?", prev.StepExecutionID).
		Order("step_execution_id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("load previous partitions: %w", err)
	}
	out := make([]plannedPartition, 0, len(olds))
	for _, o := range olds {
		c := &StepExecution{
			StepName: o.StepName, JobExecutionID: env.je.JobExecutionID, ParentStepExecutionID: &se.StepExecutionID,
			PartitionKey: o.PartitionKey, RangeStart: o.RangeStart, RangeEnd: o.RangeEnd,
			Status: StatusStarting, ExitCode: ExitExecuting,
		}
		var m map[string]any
		if o.Status == StatusCompleted {
			now := time.Now()
			c.Status, c.ExitCode = StatusCompleted, ExitNoop
			c.ExitMessage = fmt.Sprintf("completed by step execution %d", o.StepExecutionID)
			c.StartTime, c.EndTime = &now, &now
		} else {
			var err error
			if m, err = loadStepContext(ctx, tx, o.StepExecutionID); err != nil {
				return nil, err
			}
		}
		out = append(out, plannedPartition{c, m})
	}
	return out, nil
}
