package batch

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
)

// flowState is where a running execution stands in its job's flow.
type flowState struct {
	toStart  []string // steps due now (the next node, or the next step of each split branch)
	running  bool     // some step is still running
	failures []string // why steps failed
	stopped  bool     // some step stopped or was abandoned
}

// walkFlow reads the flow against the step executions so far: nodes run in
// order; a node is done when every step of every branch completed, now or
// in an earlier execution of the instance.
func walkFlow(job *Job, steps map[string]*StepExecution, earlier map[string]bool) flowState {
	var st flowState
	for _, node := range job.Flow {
		nodeDone := true
		for _, flow := range node.nodeSteps() {
			for _, s := range flow {
				if earlier[s.name] {
					continue
				}
				se, ok := steps[s.name]
				if !ok {
					st.toStart = append(st.toStart, s.name)
					nodeDone = false
					break
				}
				if se.Status == StatusCompleted {
					continue
				}
				nodeDone = false
				switch {
				case Running(se.Status):
					st.running = true
				case se.Status == StatusFailed:
					st.failures = append(st.failures, fmt.Sprintf("step %s failed: %s", s.name, se.ExitMessage))
				default: // STOPPED, ABANDONED
					st.stopped = true
				}
				break
			}
		}
		if !nodeDone {
			break
		}
	}
	return st
}

// advance moves a running execution along its flow. It is idempotent: it
// looks at what the repository says has run, enqueues the steps that should
// start now (task IDs make a repeat harmless) and ends the execution when
// nothing is left to run. Every handler calls it after its work, and so
// does the reconciler.
func (e *Engine) advance(ctx context.Context, jeID int64) error {
	je, err := loadJobExecution(ctx, e.db, jeID)
	if err != nil {
		return err
	}
	if !Running(je.Status) {
		return nil
	}
	job, err := e.reg.Job(je.Instance.JobName)
	if err != nil {
		return e.finishJob(ctx, jeID, StatusFailed, err.Error())
	}
	steps, err := topSteps(ctx, e.db, jeID)
	if err != nil {
		return err
	}
	earlier, err := completedEarlier(ctx, e.db, je.JobInstanceID, jeID)
	if err != nil {
		return err
	}
	st := walkFlow(job, steps, earlier)
	switch {
	case st.running:
		// Wait for the running steps; parallel flows of a split whose next
		// step is due still start, unless the job is stopping or failing.
		if je.Status == StatusStarted && len(st.failures) == 0 && !st.stopped {
			return e.startSteps(ctx, je, st.toStart)
		}
		return nil
	case len(st.failures) > 0:
		return e.finishJob(ctx, jeID, StatusFailed, strings.Join(st.failures, "; "))
	case st.stopped || je.Status == StatusStopping:
		return e.finishJob(ctx, jeID, StatusStopped, "stopped")
	case len(st.toStart) > 0 && je.Status == StatusStarting:
		return e.enqueueJob(ctx, je)
	case len(st.toStart) > 0:
		return e.startSteps(ctx, je, st.toStart)
	default:
		return e.finishJob(ctx, jeID, StatusCompleted, "")
	}
}

// startSteps enqueues the step tasks of steps, which have no execution yet.
func (e *Engine) startSteps(ctx context.Context, je *JobExecution, steps []string) error {
	for _, s := range steps {
		if err := e.enqueueStep(ctx, je.JobExecutionID, je.Generation, s, 0); err != nil {
			return err
		}
	}
	return nil
}

// finishJob ends a running execution once: the status guard lets one caller
// through, and the after-job listeners run in that caller's transaction;
// AfterJobCommitted listeners run after it commits.
func (e *Engine) finishJob(ctx context.Context, jeID int64, status Status, msg string) error {
	var ended *JobExecution
	var job *Job
	var params Params
	err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*JobExecution)(nil)).
			Set("status = ?", status).Set("exit_code = ?", exitCodeFor(status)).Set("exit_message = ?", truncate(msg, 10000)).
			Set("end_time = clock_timestamp()").Set("start_time = coalesce(start_time, clock_timestamp())").
			Set("version = version + 1").Set("last_updated = clock_timestamp()").
			Where("job_execution_id = ? AND status IN (?, ?, ?)", jeID, StatusStarting, StatusStarted, StatusStopping).Exec(ctx)
		if err != nil {
			return fmt.Errorf("finish execution %d: %w", jeID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		if ended, err = loadJobExecution(ctx, tx, jeID); err != nil {
			return err
		}
		if job, err = e.reg.Job(ended.Instance.JobName); err != nil {
			job = nil
			return nil
		}
		if params, err = loadParams(ctx, tx, jeID); err != nil {
			return err
		}
		return runJobListeners(ctx, tx, job, true, ended, params)
	})
	if err != nil || ended == nil {
		return err
	}
	e.m.execution(ended.Instance.JobName, status)
	e.m.ended(ended.Instance.JobName, "", status, ended.StartTime, ended.EndTime)
	e.log.InfoContext(ctx, "job finished", "job", ended.Instance.JobName, "job_execution_id", jeID, "status", status, "exit_message", msg)
	if job != nil {
		for _, l := range job.Listeners {
			if l.AfterJobCommitted != nil {
				l.AfterJobCommitted(ctx, ended, params)
			}
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
