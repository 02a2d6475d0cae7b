package batch

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// JobListener hooks an execution's start and end. BeforeJob and AfterJob
// run inside the transaction that changes the execution's status, so they
// run once per execution even when tasks are delivered twice; keep network
// calls out of them.
type JobListener struct {
	BeforeJob func(ctx context.Context, tx bun.Tx, je *JobExecution, p Params) error
	AfterJob  func(ctx context.Context, tx bun.Tx, je *JobExecution, p Params) error
	// AfterJobCommitted runs after the transaction that ended the execution
	// committed, in the process that ended it, outside any transaction: for
	// telling the outside world (a webhook). It runs at most once; a crash
	// right after the commit skips it.
	AfterJobCommitted func(ctx context.Context, je *JobExecution, p Params)
}

// StepListener hooks a step execution's start and end (the parent's, for a
// partitioned step), inside the transaction that changes its status.
type StepListener struct {
	BeforeStep func(ctx context.Context, tx bun.Tx, se *StepExecution, p Params) error
	AfterStep  func(ctx context.Context, tx bun.Tx, se *StepExecution, p Params) error
}

// runAfterStep runs the after-step listeners in tx and saves the exit
// status one of them set on se (Spring's afterStep returning an
// ExitStatus).
func runAfterStep(ctx context.Context, tx bun.Tx, step *Step, se *StepExecution, p Params) error {
	before := se.ExitCode
	if err := runStepListeners(ctx, tx, step, true, se, p); err != nil {
		return err
	}
	if se.ExitCode == before {
		return nil
	}
	if _, err := updateSteps(tx).Set("exit_code = ?", truncate(se.ExitCode, 2500)).
		Where("step_execution_id = ?", se.StepExecutionID).Exec(ctx); err != nil {
		return fmt.Errorf("save exit status of step %s: %w", step.name, err)
	}
	return nil
}

// ExitStatus is an after-step listener that sets the step's exit status
// to what fn returns for the ended execution ("" keeps it), e.g. NOOP when
// nothing was written, for transitions to route by.
func ExitStatus(fn func(se *StepExecution) string) StepListener {
	return StepListener{AfterStep: func(_ context.Context, _ bun.Tx, se *StepExecution, _ Params) error {
		if code := fn(se); code != "" {
			se.ExitCode = code
		}
		return nil
	}}
}

// NoopWhenNothingWritten is for ExitStatus: NOOP for a completed step
// that wrote nothing.
func NoopWhenNothingWritten(se *StepExecution) string {
	if se.Status == StatusCompleted && se.WriteCount == 0 {
		return ExitNoop
	}
	return ""
}

// CompletedWithSkips is for ExitStatus: COMPLETED WITH SKIPS for a
// completed step that skipped items.
func CompletedWithSkips(se *StepExecution) string {
	if se.Status == StatusCompleted && se.ReadSkipCount+se.ProcessSkipCount+se.WriteSkipCount > 0 {
		return ExitCompletedWithSkips
	}
	return ""
}

// runJobListeners runs the job's before-job (after false) or after-job
// listeners in tx.
func runJobListeners(ctx context.Context, tx bun.Tx, job *Job, after bool, je *JobExecution, p Params) error {
	for _, l := range job.Listeners {
		fn, what := l.BeforeJob, "before-job"
		if after {
			fn, what = l.AfterJob, "after-job"
		}
		if fn == nil {
			continue
		}
		if err := fn(ctx, tx, je, p); err != nil {
			return fmt.Errorf("%s listener of %s: %w", what, job.Name, err)
		}
	}
	return nil
}

// runStepListeners runs the step's before-step (after false) or after-step
// listeners in tx.
func runStepListeners(ctx context.Context, tx bun.Tx, step *Step, after bool, se *StepExecution, p Params) error {
	for _, l := range step.listeners {
		fn, what := l.BeforeStep, "before-step"
		if after {
			fn, what = l.AfterStep, "after-step"
		}
		if fn == nil {
			continue
		}
		if err := fn(ctx, tx, se, p); err != nil {
			return fmt.Errorf("%s listener of %s: %w", what, step.name, err)
		}
	}
	return nil
}
