package batch

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

)

// advance moves a running execution along its flow. It is idempotent: it
// looks at what the repository says has run, enqueues the steps that should
// start now (deterministic task IDs make a repeat harmless) and ends the
// execution when nothing is left to run. Every handler calls it after its
// work, and so does the reconciler.
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
	var (
		toStart  []string
		running  bool
		failures []string
		stopped  bool
	)
nodes:
	for _, node := range job.Flow {
		nodeDone := true
		for _, flow := range node.nodeSteps() {
			for _, s := range flow {
				if earlier[s.name] {
					continue
				}
				se, ok := steps[s.name]
				if !ok {
					toStart = append(toStart, s.name)
					nodeDone = false
					break
				}
				if se.Status == StatusCompleted {
					continue
				}
				nodeDone = false
				switch {
				case Running(se.Status):
					running = true
				case se.Status == StatusFailed:
					failures = append(failures, fmt.Sprintf("step %s failed: %s", s.name, se.ExitMessage))
				default: // STOPPED, ABANDONED
					stopped = true
				}
				break
			}
		}
		if !nodeDone {
			break nodes
		}
	}
	switch {
	case running:
		// Wait for the running steps; parallel flows of a split whose next
		// step is due still start, unless the job is stopping or failing.
		if je.Status == StatusStarted && len(failures) == 0 && !stopped {
			for _, s := range toStart {
				if err := e.enqueueStep(ctx, jeID, s); err != nil {
					return err
				}
			}
		}
		return nil
	case len(failures) > 0:
		return e.finishJob(ctx, jeID, StatusFailed, strings.Join(failures, "; "))
	case stopped || je.Status == StatusStopping:
		return e.finishJob(ctx, jeID, StatusStopped, "stopped")
	case len(toStart) > 0:
		if je.Status == StatusStarting {
			return e.enqueueJob(ctx, jeID)
		}
		for _, s := range toStart {
			if err := e.enqueueStep(ctx, jeID, s); err != nil {
				return err
			}
		}
		return nil
	default:
		return e.finishJob(ctx, jeID, StatusCompleted, "")
	}
}

// finishJob ends a running execution once: the status guard lets one caller
// through, and the after-job listeners run in that caller's transaction.
func (e *Engine) finishJob(ctx context.Context, jeID int64, status Status, msg string) error {
	var won bool
	var name string
	err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		je := new(JobExecution)
		res, err := tx.NewUpdate().Model(je).
			Set("status = ?", status).Set("exit_code = ?", exitCodeFor(status)).Set("exit_message = ?", truncate(msg, 10000)).
			Set("end_time = clock_timestamp()").Set("start_time = coalesce(start_time, clock_timestamp())").Set("version = version + 1").Set("last_updated = clock_timestamp()").
			Where("job_execution_id = ? AND status IN (?, ?, ?)", jeID, StatusStarting, StatusStarted, StatusStopping).
			Returning("*").Exec(ctx)
		if err != nil {
			return fmt.Errorf("finish execution %d: %w", jeID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		won = true
		full, err := loadJobExecution(ctx, tx, jeID)
		if err != nil {
			return err
		}
		name = full.Instance.JobName
		job, jerr := e.reg.Job(name)
		if jerr != nil {
			return nil
		}
		p, err := loadParams(ctx, tx, jeID)
		if err != nil {
			return err
		}
		for _, l := range job.Listeners {
			if l.AfterJob != nil {
				if err := l.AfterJob(ctx, tx, full, p); err != nil {
					return fmt.Errorf("after-job listener of %s: %w", name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if won {
		e.m.execution(name, status)
		e.log.InfoContext(ctx, "job finished", "job", name, "job_execution_id", jeID, "status", status, "exit_message", msg)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
