package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
)

// Ownership of a running partition or tasklet: who may commit its next
// chunk. A delivery first claims the step execution for its generation (one
// statement, committed at once, so the reconciler sees who holds it); every
// later transaction fences on the version the previous one left.

// claimed is what a claim returns.
type claimed struct {
	Version   int64  `bun:"version"`
	JobStatus string `bun:"job_status"`
}

// claim takes step execution seID for generation gen and worker workerID:
// it stamps both, bumps the version (so an earlier holder's next fence
// fails) and marks it STARTED. A delivery of an older generation than the
// execution's, or of one that has ended, gets errFenced. A newer generation
// than recorded wins too: its re-drive committed the task before the bump.
func claim(ctx context.Context, db bun.IDB, seID int64, gen int, workerID string) (claimed, error) {
	var c claimed
	err := db.NewRaw(`UPDATE batch_step_execution AS s
		SET version = s.version + 1, generation = ?, worker_id = nullif(?, ''), status = ?,
			start_time = coalesce(s.start_time, clock_timestamp()), last_updated = clock_timestamp()
		FROM batch_job_execution AS j
		WHERE s.step_execution_id = ? AND s.generation <= ? AND s.status IN (?, ?) AND j.job_execution_id = s.job_execution_id
		RETURNING s.version, j.status AS job_status`,
		gen, workerID, StatusStarted, seID, gen, StatusStarting, StatusStarted).Scan(ctx, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return c, errFenced
	}
	if err != nil {
		return c, fmt.Errorf("claim step execution %d: %w", seID, err)
	}
	return c, nil
}

// fence takes ownership of a step execution for one transaction: it bumps
// the version only if it is still the one this delivery left, which also
// row-locks the step execution until commit. It returns the job's status,
// or errFenced when another delivery moved the version or the step ended.
func fence(ctx context.Context, tx bun.Tx, seID, version int64) (Status, error) {
	var jobStatus string
	err := tx.NewRaw(`UPDATE batch_step_execution AS s
		SET version = s.version + 1, last_updated = clock_timestamp()
		FROM batch_job_execution AS j
		WHERE s.step_execution_id = ? AND s.version = ? AND s.status IN (?, ?) AND j.job_execution_id = s.job_execution_id
		RETURNING j.status`, seID, version, StatusStarting, StatusStarted).Scan(ctx, &jobStatus)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errFenced
	}
	if err != nil {
		return "", fmt.Errorf("fence step execution %d: %w", seID, err)
	}
	return jobStatus, nil
}

// releaseForRedrive, in a transaction that holds the step execution (by a
// fence or a row lock), gives it up: the next generation, no holder. The
// caller enqueues that generation's task in the same transaction, so the
// new delivery's claim waits on the row lock until the release commits.
// A re-drive after a fault is counted (count: the re-drives since the
// step last committed progress); a drain's hand-back is not.
func releaseForRedrive(ctx context.Context, tx bun.Tx, seID int64, counted bool) (gen, count int, err error) {
	inc := 0
	if counted {
		inc = 1
	}
	if err := tx.NewRaw(`UPDATE batch_step_execution SET generation = generation + 1, worker_id = NULL,
		redrive_count = redrive_count + ?, version = version + 1, last_updated = clock_timestamp()
		WHERE step_execution_id = ? RETURNING generation, redrive_count`, inc, seID).
		Scan(ctx, &gen, &count); err != nil {
		return 0, 0, fmt.Errorf("release step execution %d: %w", seID, err)
	}
	return gen, count, nil
}

// stopping reports whether a job status asks its steps to stop.
func stopping(jobStatus Status) bool {
	return jobStatus == StatusStopping || jobStatus == StatusStopped
}

// transition adds to q, an update of step executions, the move to status:
// its exit code and message, a version bump (fencing off any other
// delivery) and last_updated; an ending status also sets end_time. Callers
// add counters and the WHERE.
func transition(q *bun.UpdateQuery, status Status, msg string) *bun.UpdateQuery {
	return transitionExit(q, status, exitCodeFor(status), msg)
}

// transitionExit is transition with an exit status other than the
// status's own (a step that reports NOOP, COMPLETED WITH SKIPS…).
func transitionExit(q *bun.UpdateQuery, status Status, exit, msg string) *bun.UpdateQuery {
	if exit == "" {
		exit = exitCodeFor(status)
	}
	q = q.Set("status = ?", status).Set("exit_code = ?", truncate(exit, 2500)).Set("exit_message = ?", truncate(msg, 10000)).
		Set("version = version + 1").Set("last_updated = clock_timestamp()")
	if !Running(status) {
		q = q.Set("end_time = clock_timestamp()")
	}
	return q
}

// updateSteps starts an update of batch_step_execution on db.
func updateSteps(db bun.IDB) *bun.UpdateQuery { return db.NewUpdate().Model((*StepExecution)(nil)) }

// finishPartition ends a partition in tx and counts it at its parent's
// barrier (see partitionDone).
func (e *Engine) finishPartition(ctx context.Context, tx bun.Tx, se *StepExecution, jeGen int, status Status, msg string, rollbacks int64) error {
	if _, err := transition(updateSteps(tx), status, msg).Set("rollback_count = rollback_count + ?", rollbacks).
		Where("step_execution_id = ?", se.StepExecutionID).Exec(ctx); err != nil {
		return fmt.Errorf("finish partition %d: %w", se.StepExecutionID, err)
	}
	return e.partitionDone(ctx, tx, se, jeGen)
}

// partitionDone, in the transaction that ended partition se, counts it at
// its parent's barrier and queues the next partition waiting its turn. The
// one that completes the barrier enqueues the aggregation inside the
// transaction: the aggregation locks the parent first, so it sees the
// barrier only once this commits, and no crash between commit and enqueue
// can lose it. The barrier's row lock also serializes the ends of one
// step's partitions, so each queues exactly one successor.
func (e *Engine) partitionDone(ctx context.Context, tx bun.Tx, se *StepExecution, jeGen int) error {
	var b struct {
		Done  int `bun:"partitions_done"`
		Total int `bun:"partitions_total"`
	}
	if err := tx.NewRaw(`UPDATE batch_step_execution SET partitions_done = partitions_done + 1, last_updated = clock_timestamp()
		WHERE step_execution_id = ? RETURNING partitions_done, partitions_total`, *se.ParentStepExecutionID).Scan(ctx, &b); err != nil {
		return fmt.Errorf("partition barrier of %d: %w", *se.ParentStepExecutionID, err)
	}
	if b.Done == b.Total {
		return e.enqueueStepDone(ctx, *se.ParentStepExecutionID, jeGen)
	}
	return e.queueNext(ctx, tx, *se.ParentStepExecutionID, 1)
}

// queueNext marks up to n partitions of parent that wait their turn queued,
// in partition order, and enqueues them, in tx.
func (e *Engine) queueNext(ctx context.Context, tx bun.IDB, parent int64, n int) error {
	var next []struct {
		ID  int64 `bun:"step_execution_id"`
		Gen int   `bun:"generation"`
	}
	if err := tx.NewRaw(`UPDATE batch_step_execution SET queued_at = clock_timestamp()
		WHERE step_execution_id IN (SELECT step_execution_id FROM batch_step_execution
			WHERE parent_step_execution_id = ? AND queued_at IS NULL AND status IN (?, ?)
			ORDER BY step_execution_id LIMIT ? FOR UPDATE SKIP LOCKED)
		RETURNING step_execution_id, generation`, parent, StatusStarting, StatusStarted, n).Scan(ctx, &next); err != nil {
		return fmt.Errorf("queue the next partitions of %d: %w", parent, err)
	}
	for _, p := range next {
		if err := e.enqueuePartition(ctx, p.ID, p.Gen); err != nil {
			return err
		}
	}
	return nil
}
