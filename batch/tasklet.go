package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/uptrace/bun"
)

// taskletRun is one delivery of a tasklet step: it claims the step for its
// generation and calls the tasklet, one fenced transaction per call, until
// it reports Finished, the job stops, the worker drains (the step is handed
// back between calls) or another delivery takes it over.
type taskletRun struct {
	e         *Engine
	env       *stepEnv
	se        *StepExecution
	log       *slog.Logger
	version   int64
	jobStatus Status
	first     bool // no call committed yet: before-step listeners are due
	ctx       map[string]any
}

// runTasklet claims step execution se for generation gen and runs it.
func (e *Engine) runTasklet(ctx context.Context, env *stepEnv, se *StepExecution, gen int) error {
	first := se.CommitCount == 0
	c, err := claim(ctx, e.db, se.StepExecutionID, gen, workerID(ctx))
	if errors.Is(err, errFenced) {
		return nil
	}
	if err != nil {
		return err
	}
	defer hold(ctx, se.StepExecutionID)()
	m, err := loadStepContext(ctx, e.db, se.StepExecutionID)
	if err != nil {
		return err
	}
	if len(m) == 0 {
		// A restart resumes the previous execution's context, unless that
		// one completed (a re-run by AllowStartIfComplete starts afresh).
		if prev, err := previousStep(ctx, e.db, env.je, env.step.name); err != nil {
			return err
		} else if prev != nil && prev.Status != StatusCompleted {
			if m, err = loadStepContext(ctx, e.db, prev.StepExecutionID); err != nil {
				return err
			}
		}
	}
	r := &taskletRun{e: e, env: env, se: se, version: c.Version, jobStatus: c.JobStatus, first: first, ctx: m,
		log: e.log.With("job", env.job.Name, "job_execution_id", se.JobExecutionID, "step", se.StepName, "step_execution_id", se.StepExecutionID)}
	return r.run(ctx)
}

func (r *taskletRun) run(ctx context.Context) error {
	attempt := 0
	for {
		switch {
		case stopping(r.jobStatus):
			return r.stop(ctx)
		case draining(ctx):
			return r.handBack(ctx)
		}
		done, err := r.call(ctx)
		if r.retry(ctx, err, &attempt) {
			continue
		}
		var sf *stepFailure
		switch {
		case errors.Is(err, errFenced):
			return nil
		case errors.As(err, &sf):
			r.log.WarnContext(ctx, "tasklet failed", "err", sf.err)
			return r.e.failStep(ctx, r.se.StepExecutionID, sf.err)
		case err != nil:
			r.log.WarnContext(ctx, "tasklet interrupted; the task will be retried", "err", err)
			return err
		case done:
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// retry reports whether a failed call is to be made again under the step's
// RetryPolicy, after waiting its backoff (outside any transaction).
func (r *taskletRun) retry(ctx context.Context, err error, attempt *int) bool {
	if err == nil || errors.Is(err, errFenced) {
		*attempt = 0
		return false
	}
	cause := err
	var sf *stepFailure
	if errors.As(err, &sf) {
		cause = sf.err
	}
	p := r.env.step.retry
	if *attempt >= p.Limit || !p.retryable(cause) {
		return false
	}
	*attempt++
	r.log.InfoContext(ctx, "tasklet call failed; retrying", "attempt", *attempt, "err", cause)
	return sleep(ctx, p.backoff(*attempt)) == nil
}

// call runs the tasklet once and commits what it did; done reports that it
// finished.
func (r *taskletRun) call(ctx context.Context) (done bool, err error) {
	sc := r.env.stepContext(r.se, r.ctx)
	var rs RepeatStatus
	if r.env.step.ioTasklet != nil {
		if rs, err = r.env.step.ioTasklet(ctx, r.e.db, sc); err != nil {
			return false, taskletFault(ctx, err)
		}
	}
	err = r.e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		js, err := fence(ctx, tx, r.se.StepExecutionID, r.version)
		if err != nil {
			return err
		}
		r.jobStatus = js
		if r.first {
			if err := runStepListeners(ctx, tx, r.env.step, false, r.se, r.env.params); err != nil {
				return err
			}
		}
		if r.env.step.tasklet != nil {
			if rs, err = r.env.step.tasklet(ctx, tx, sc); err != nil {
				return taskletFault(ctx, err)
			}
		}
		done = rs == Finished
		return r.commit(ctx, tx, sc, done)
	})
	if err != nil {
		return false, err
	}
	r.version++
	r.first = false
	return done, nil
}

// commit saves a call's context and counts in tx, and completes the step
// when the tasklet finished.
func (r *taskletRun) commit(ctx context.Context, tx bun.Tx, sc *StepContext, done bool) error {
	if err := saveStepContext(ctx, tx, r.se.StepExecutionID, sc.Context); err != nil {
		return err
	}
	q := tx.NewUpdate().Model(r.se).
		Set("read_count = read_count + ?", sc.Counts.Read).Set("write_count = write_count + ?", sc.Counts.Write).
		Set("filter_count = filter_count + ?", sc.Counts.Filter).Set("commit_count = commit_count + 1").Set("redrive_count = 0").WherePK()
	if done {
		q = transitionExit(q, StatusCompleted, sc.ExitStatus, "")
	}
	if err := q.Returning("*").Scan(ctx); err != nil {
		return fmt.Errorf("count tasklet: %w", err)
	}
	if done {
		r.e.m.ended(r.env.job.Name, r.se.StepName, r.se.Status, r.se.StartTime, r.se.EndTime)
		return runAfterStep(ctx, tx, r.env.step, r.se, r.env.params)
	}
	return nil
}

// taskletFault sorts a tasklet's error: infrastructure goes back to asynq,
// anything else fails the step.
func taskletFault(ctx context.Context, err error) error {
	if isInfra(ctx, err) {
		return err
	}
	return &stepFailure{err}
}

// stop ends the tasklet STOPPED between calls, its context kept.
func (r *taskletRun) stop(ctx context.Context) error {
	err := r.e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := fence(ctx, tx, r.se.StepExecutionID, r.version); err != nil {
			return err
		}
		_, err := transition(updateSteps(tx), StatusStopped, "stopped between calls").
			Where("step_execution_id = ?", r.se.StepExecutionID).Exec(ctx)
		return err
	})
	if errors.Is(err, errFenced) {
		return nil
	}
	return err
}

// handBack gives the tasklet back to the queue between calls (the worker
// is draining), like partitionRun.handBack.
func (r *taskletRun) handBack(ctx context.Context) error {
	err := r.e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := fence(ctx, tx, r.se.StepExecutionID, r.version); err != nil {
			return err
		}
		gen, _, err := releaseForRedrive(ctx, tx, r.se.StepExecutionID, false)
		if err != nil {
			return err
		}
		return r.e.enqueueStep(ctx, r.se.JobExecutionID, r.env.je.Generation, r.se.StepName, gen)
	})
	if errors.Is(err, errFenced) {
		return nil
	}
	if err == nil {
		r.log.InfoContext(ctx, "tasklet handed back: the worker is draining")
	}
	return err
}
