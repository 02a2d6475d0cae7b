package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
)

// The control tasks: batch:job, batch:step and batch:step-done. Each is
// idempotent and ends by advancing the flow, so a duplicate or a re-drive
// of any of them is harmless.

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
			return err // another worker may know it; the reconciler fails a job nobody knows
		}
		params, err := loadParams(ctx, tx, p.JobExecutionID)
		if err != nil {
			return err
		}
		if err := runJobListeners(ctx, tx, job, false, je, params); err != nil {
			return err
		}
		e.m.execution(job.Name, StatusStarted)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry) // no execution to leave without a task
	}
	if err != nil {
		return err
	}
	return e.advanceFlow(ctx, p.JobExecutionID, true)
}

// stepEnv is what a step's handlers load about their execution.
type stepEnv struct {
	je        *JobExecution
	job       *Job
	step      *Step
	params    Params
	sizer     Sizer
	fixedSize bool
	atOnce    int
}

// loadStepEnv loads a step's execution, job and parameters. An execution
// that does not exist is ErrNotFound; a job or step this process does not
// know is ErrUnknownJob or ErrUnknownStep.
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
		return nil, fmt.Errorf("job %s: %w %q", job.Name, ErrUnknownStep, stepName)
	}
	params, err := loadParams(ctx, db, jeID)
	if err != nil {
		return nil, err
	}
	return &stepEnv{je: je, job: job, step: step, params: params, sizer: e.opts.Partitions, fixedSize: e.opts.FixedSize, atOnce: e.atOnce(step)}, nil
}

func (env *stepEnv) stepContext(se *StepExecution, m map[string]any) *StepContext {
	sc := &StepContext{
		Params: env.params, JobExecutionID: env.je.JobExecutionID, StepExecutionID: se.StepExecutionID,
		JobName: env.job.Name, StepName: env.step.name, Range: FullRange, Context: m, sizer: env.sizer,
		fixed: env.fixedSize, atOnce: env.atOnce,
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
	return e.runStep(ctx, p.JobExecutionID, p.Step, p.Generation)
}

// runStep creates step's execution in execution jeID and runs it (a
// tasklet, for generation gen) or splits it into partition tasks (a chunk
// step).
func (e *Engine) runStep(ctx context.Context, jeID int64, step string, gen int) error {
	env, err := e.loadStepEnv(ctx, e.db, jeID, step)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if errors.Is(err, ErrUnknownStep) {
		// No retry can heal it: the job fails now, with the reason.
		return errors.Join(e.finishJob(ctx, jeID, StatusFailed, ExitFailed, err.Error()), asynq.SkipRetry)
	}
	if err != nil {
		return err // a job unknown here: another worker may know it
	}
	if env.je.Status != StatusStarted {
		return e.advance(ctx, jeID)
	}
	se, err := e.ensureStep(ctx, env, step)
	if err != nil {
		return err
	}
	if !Running(se.Status) {
		return e.advance(ctx, jeID)
	}
	if env.step.isTasklet() {
		if err := e.runTasklet(ctx, env, se, gen); err != nil {
			return err
		}
		return e.advance(ctx, jeID)
	}
	return e.startPartitions(ctx, env, se)
}

// ensureStep creates the top-level execution of step once and returns it.
// A step past its start limit is created FAILED, with the reason.
func (e *Engine) ensureStep(ctx context.Context, env *stepEnv, step string) (*StepExecution, error) {
	jeID := env.je.JobExecutionID
	se := &StepExecution{StepName: step, JobExecutionID: jeID, Status: StatusStarting, ExitCode: ExitExecuting}
	if limit := env.step.startLimit; limit > 0 {
		// Count the earlier starts only for a start, not for every delivery.
		if err := e.db.NewSelect().Model(se).
			Where("job_execution_id = ? AND step_name = ? AND parent_step_execution_id IS NULL", jeID, step).Scan(ctx); err == nil {
			return se, nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("load step execution %s: %w", step, err)
		}
		started, err := e.db.NewSelect().Model((*StepExecution)(nil)).
			Join("JOIN batch_job_execution AS j ON j.job_execution_id = step_execution.job_execution_id").
			Where("j.job_instance_id = ? AND j.job_execution_id < ?", env.je.JobInstanceID, jeID).
			Where("step_execution.step_name = ? AND step_execution.parent_step_execution_id IS NULL", step).Count(ctx)
		if err != nil {
			return nil, fmt.Errorf("count the starts of step %s: %w", step, err)
		}
		if int64(started) >= int64(limit) {
			now := e.now()
			se.Status, se.ExitCode, se.StartTime, se.EndTime = StatusFailed, ExitFailed, &now, &now
			se.ExitMessage = fmt.Sprintf("start limit exceeded: step %s may start %d times in instance %d and has started %d", step, limit, env.je.JobInstanceID, started)
		}
	}
	if _, err := e.db.NewInsert().Model(se).
		On("CONFLICT (job_execution_id, step_name) WHERE parent_step_execution_id IS NULL DO NOTHING").Exec(ctx); err != nil {
		return nil, fmt.Errorf("create step execution %s: %w", step, err)
	}
	if err := e.db.NewSelect().Model(se).
		Where("job_execution_id = ? AND step_name = ? AND parent_step_execution_id IS NULL", jeID, step).Scan(ctx); err != nil {
		return nil, fmt.Errorf("load step execution %s: %w", step, err)
	}
	return se, nil
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

// failStep ends a top-level step execution FAILED and advances the job.
func (e *Engine) failStep(ctx context.Context, seID int64, cause error) error {
	se, err := loadStepExecution(ctx, e.db, seID)
	if err != nil {
		return err
	}
	if _, err := transition(updateSteps(e.db), StatusFailed, cause.Error()).
		Where("step_execution_id = ? AND status IN (?, ?)", seID, StatusStarting, StatusStarted).Exec(ctx); err != nil {
		return fmt.Errorf("fail step execution %d: %w", seID, err)
	}
	return e.advance(ctx, se.JobExecutionID)
}
