package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

)

// handleJob starts an execution: STARTING → STARTED with the before-job
// listeners in the same transaction, then the first node.
func (e *Engine) handleJob(ctx context.Context, t *asynq.Task) error {
	var p jobPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*JobExecution)(nil)).
			Set("status = ?", StatusStarted).Set("start_time = clock_timestamp()").Set("exit_code = ?", ExitExecuting).
			Set("version = version + 1").Set("last_updated = clock_timestamp()").
			Where("job_execution_id = ? AND status = ?", p.JobExecutionID, StatusStarting).Exec(ctx)
		if err != nil {
			return fmt.Errorf("start execution %d: %w", p.JobExecutionID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // already started (duplicate delivery), stopping or gone
		}
		je, err := loadJobExecution(ctx, tx, p.JobExecutionID)
		if err != nil {
			return err
		}
		job, err := e.reg.Job(je.Instance.JobName)
		if err != nil {
			return nil // advance fails it
		}
		params, err := loadParams(ctx, tx, p.JobExecutionID)
		if err != nil {
			return err
		}
		for _, l := range job.Listeners {
			if l.BeforeJob != nil {
				if err := l.BeforeJob(ctx, tx, je, params); err != nil {
					return fmt.Errorf("before-job listener of %s: %w", job.Name, err)
				}
			}
		}
		e.m.execution(job.Name, StatusStarted)
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	}
	return e.advance(ctx, p.JobExecutionID)
}

// stepEnv is what a step's handlers load about their execution.
type stepEnv struct {
	je     *JobExecution
	job    *Job
	step   *Step
	params Params
}

func (e *Engine) loadStepEnv(ctx context.Context, db bun.IDB, jeID int64, stepName string) (*stepEnv, error) {
	je, err := loadJobExecution(ctx, db, jeID)
	if err != nil {
		return nil, err
	}
	job, err := e.reg.Job(je.Instance.JobName)
	if err != nil {
		return nil, err
	}
	step, ok := job.step(stepName)
	if !ok {
		return nil, fmt.Errorf("job %s has no step %q: %w", job.Name, stepName, ErrNotFound)
	}
	params, err := loadParams(ctx, db, jeID)
	if err != nil {
		return nil, err
	}
	return &stepEnv{je: je, job: job, step: step, params: params}, nil
}

func (env *stepEnv) stepContext(se *StepExecution, m map[string]any) *StepContext {
	sc := &StepContext{
		Params: env.params, JobExecutionID: env.je.JobExecutionID, StepExecutionID: se.StepExecutionID,
		JobName: env.job.Name, StepName: env.step.name, Range: FullRange, Context: m,
	}
	if se.RangeStart != nil && se.RangeEnd != nil {
		sc.Range = Range{Start: *se.RangeStart, End: *se.RangeEnd}
	}
	return sc
}

// handleStep creates a step's execution and runs it (tasklet) or splits it
// into partition tasks (chunk step).
func (e *Engine) handleStep(ctx context.Context, t *asynq.Task) error {
	var p stepPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	env, err := e.loadStepEnv(ctx, e.db, p.JobExecutionID, p.Step)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnknownJob) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	if env.je.Status != StatusStarted {
		return e.advance(ctx, p.JobExecutionID)
	}
	se := &StepExecution{StepName: p.Step, JobExecutionID: p.JobExecutionID, Status: StatusStarting, ExitCode: ExitExecuting}
	if _, err := e.db.NewInsert().Model(se).
		On("CONFLICT (job_execution_id, step_name) WHERE parent_step_execution_id IS NULL DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("create step execution %s: %w", p.Step, err)
	}
	if err := e.db.NewSelect().Model(se).
		Where("job_execution_id = ? AND step_name = ? AND parent_step_execution_id IS NULL", p.JobExecutionID, p.Step).Scan(ctx); err != nil {
		return fmt.Errorf("load step execution %s: %w", p.Step, err)
	}
	log := e.log.With("job", env.job.Name, "job_execution_id", p.JobExecutionID, "step", p.Step, "step_execution_id", se.StepExecutionID)
	if !Running(se.Status) {
		return e.advance(ctx, p.JobExecutionID)
	}
	if env.step.tasklet != nil {
		if err := e.runTasklet(ctx, env, se.StepExecutionID); err != nil {
			log.WarnContext(ctx, "tasklet interrupted; the task will be retried", "err", err)
			return err
		}
		return e.advance(ctx, p.JobExecutionID)
	}
	return e.startPartitions(ctx, env, se, log)
}

// previousStep finds the step's execution in the instance's previous
// execution, for a restart to resume from.
func previousStep(ctx context.Context, db bun.IDB, je *JobExecution, step string) (*StepExecution, error) {
	prev := new(StepExecution)
	err := db.NewSelect().Model(prev).
		Join("JOIN batch_job_execution AS j ON j.job_execution_id = step_execution.job_execution_id").
		Where("j.job_instance_id = ? AND j.job_execution_id < ?", je.JobInstanceID, je.JobExecutionID).
		Where("step_execution.step_name = ? AND step_execution.parent_step_execution_id IS NULL", step).
		Order("step_execution.step_execution_id DESC").Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load previous execution of step %s: %w", step, err)
	}
	return prev, nil
}

// startPartitions creates a chunk step's partitions once (all in one
// transaction), then enqueues every partition still to run.
func (e *Engine) startPartitions(ctx context.Context, env *stepEnv, se *StepExecution, log interface {
	InfoContext(context.Context, string, ...any)
}) error {
	if se.PartitionsTotal == nil {
		err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
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
			done := 0
			for _, c := range children {
				if c.Status == StatusCompleted {
					done++
				}
			}
			if len(children) > 0 {
				ctxs := make([]map[string]any, len(children))
				for i, c := range children {
					ctxs[i] = c.ctx
				}
				rows := make([]*StepExecution, len(children))
				for i, c := range children {
					rows[i] = c.StepExecution
				}
				if _, err := tx.NewInsert().Model(&rows).Returning("step_execution_id").Exec(ctx); err != nil {
					return fmt.Errorf("create partitions of %s: %w", env.step.name, err)
				}
				for i, r := range rows {
					if len(ctxs[i]) > 0 {
						if err := saveStepContext(ctx, tx, r.StepExecutionID, ctxs[i]); err != nil {
							return err
						}
					}
				}
			}
			total := len(children)
			se.PartitionsTotal, se.PartitionsDone, se.Status = &total, done, StatusStarted
			if _, err := tx.NewUpdate().Model(se).
				Set("partitions_total = ?", total).Set("partitions_done = ?", done).Set("status = ?", StatusStarted).
				Set("start_time = clock_timestamp()").Set("version = version + 1").Set("last_updated = clock_timestamp()").
				WherePK().Exec(ctx); err != nil {
				return fmt.Errorf("start step %s: %w", env.step.name, err)
			}
			for _, l := range env.step.listeners {
				if l.BeforeStep != nil {
					if err := l.BeforeStep(ctx, tx, se, env.params); err != nil {
						return fmt.Errorf("before-step listener of %s: %w", env.step.name, err)
					}
				}
			}
			log.InfoContext(ctx, "step partitioned", "partitions", total, "already_completed", done)
			return nil
		})
		if err != nil {
			var sf *stepFailure
			if errors.As(err, &sf) {
				return e.failStep(ctx, se.StepExecutionID, sf.err)
			}
			return err
		}
	}
	var pending []int64
	if err := e.db.NewSelect().Model((*StepExecution)(nil)).Column("step_execution_id").
		Where("parent_step_execution_id = ? AND status IN (?, ?)", se.StepExecutionID, StatusStarting, StatusStarted).
		Order("step_execution_id").Scan(ctx, &pending); err != nil {
		return fmt.Errorf("list partitions of %s: %w", env.step.name, err)
	}
	for _, id := range pending {
		if err := e.enqueuePartition(ctx, id); err != nil {
			return err
		}
	}
	if se.PartitionsTotal != nil && se.PartitionsDone >= *se.PartitionsTotal {
		return e.enqueueStepDone(ctx, se.StepExecutionID)
	}
	return nil
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
	var out []plannedPartition
	if prev != nil && prev.PartitionsTotal != nil {
		var olds []*StepExecution
		if err := tx.NewSelect().Model(&olds).Where("parent_step_execution_id = ?", prev.StepExecutionID).
			Order("step_execution_id").Scan(ctx); err != nil {
			return nil, fmt.Errorf("load previous partitions: %w", err)
		}
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
			} else if m, err = loadStepContext(ctx, tx, o.StepExecutionID); err != nil {
				return nil, err
			}
			out = append(out, plannedPartition{c, m})
		}
		return out, nil
	}
	sc := env.stepContext(se, map[string]any{})
	ranges, err := env.step.part(ctx, tx, sc)
	if err != nil {
		return nil, fmt.Errorf("partition step %s: %w", env.step.name, err)
	}
	for i, r := range ranges {
		key := fmt.Sprintf("%s:partition-%04d", env.step.name, i)
		rs, re := r.Start, r.End
		out = append(out, plannedPartition{&StepExecution{
			StepName: env.step.name, JobExecutionID: env.je.JobExecutionID, ParentStepExecutionID: &se.StepExecutionID,
			PartitionKey: &key, RangeStart: &rs, RangeEnd: &re, Status: StatusStarting, ExitCode: ExitExecuting,
		}, nil})
	}
	return out, nil
}

// failStep ends a top-level step execution FAILED and advances the job.
func (e *Engine) failStep(ctx context.Context, seID int64, cause error) error {
	se, err := loadStepExecution(ctx, e.db, seID)
	if err != nil {
		return err
	}
	if _, err := e.db.NewUpdate().Model((*StepExecution)(nil)).
		Set("status = ?", StatusFailed).Set("exit_code = ?", ExitFailed).Set("exit_message = ?", truncate(cause.Error(), 10000)).
		Set("end_time = clock_timestamp()").Set("version = version + 1").Set("last_updated = clock_timestamp()").
		Where("step_execution_id = ? AND status IN (?, ?)", seID, StatusStarting, StatusStarted).Exec(ctx); err != nil {
		return fmt.Errorf("fail step execution %d: %w", seID, err)
	}
	return e.advance(ctx, se.JobExecutionID)
}
