package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// The reconciler keeps every running execution driven with no human
// action. Liveness is the holder's heartbeat, not the step row: a step
// held by a worker that beats and lists it (batch_worker.held) is alive
// however long its phase takes, and is never re-driven. Two passes:
//
//   - Failover (fast): partitions and tasklets held by a worker whose
//     heartbeat is older than FailoverAfter (dead, frozen or cut off from
//     Postgres) are released and re-enqueued under their next generation.
//   - Reconcile (slow): in executions that have not moved for StaleAfter,
//     the work held by no live worker whose task is gone from Redis
//     (archived after exhausting its retries, or lost with Redis) is
//     re-driven; work waiting in a queue, however long, is left to wait.
//
// A new generation means a new task ID, so the re-drive reaches the queue
// even where an archived or dead task still holds the old one; a delivery
// of an older generation finds it superseded and leaves. Rows an open
// transaction holds (a frozen worker's, or another scheduler's re-drive)
// are skipped (SKIP LOCKED). Each re-drive is counted on its step
// execution; past RedriveLimit without progress in between, the step ends
// FAILED with the last error instead (poison work ends).

// ReconcileOptions tune RunReconciler. Zero values take the defaults.
type ReconcileOptions struct {
	// Every is how often both passes run. Default 2s.
	Every time.Duration
	// StaleAfter is how long an execution may make no progress before its
	// unheld work is checked against Redis and re-driven if lost. Default 2m.
	StaleAfter time.Duration
	// FailoverAfter is how old a worker's heartbeat may be before what it
	// holds is re-driven. Default 5s (workers beat every second).
	FailoverAfter time.Duration
	// RedriveLimit is how many times one step execution is re-driven
	// without committing progress in between; the next time it ends
	// FAILED with the last error. Default DefaultRedriveLimit; negative:
	// no limit.
	RedriveLimit int
	// Inspector looks tasks up in Redis. Nil: idle work nobody holds is
	// taken as lost (re-driven after StaleAfter even if it still waits in
	// a queue). The scheduler always sets it.
	Inspector *asynq.Inspector
}

// DefaultRedriveLimit is ReconcileOptions.RedriveLimit's default.
const DefaultRedriveLimit = 3

func (o *ReconcileOptions) defaults() {
	if o.Every <= 0 {
		o.Every = 2 * time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 2 * time.Minute
	}
	if o.FailoverAfter <= 0 {
		o.FailoverAfter = 5 * time.Second
	}
	if o.RedriveLimit == 0 {
		o.RedriveLimit = DefaultRedriveLimit
	}
}

// RunReconciler runs Failover and Reconcile every o.Every until ctx ends.
// While the job repository is unreachable it waits; once it is back it
// gives the workers FailoverAfter to beat again before judging any of
// them: a Postgres outage is not a fleet death.
func (e *Engine) RunReconciler(ctx context.Context, o ReconcileOptions) {
	o.defaults()
	t := time.NewTicker(o.Every)
	defer t.Stop()
	var down bool
	var grace time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := e.db.PingContext(ctx); err != nil {
			if !down && ctx.Err() == nil {
				e.log.WarnContext(ctx, "reconciler: the job repository is unreachable; waiting for it", "err", err)
			}
			down = true
			continue
		}
		if down {
			down, grace = false, time.Now().Add(o.FailoverAfter)
			e.log.InfoContext(ctx, "reconciler: the job repository is back; workers get time to beat before failover", "grace", o.FailoverAfter)
		}
		if time.Now().Before(grace) {
			continue
		}
		if n, err := e.Failover(ctx, o); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "failover", "err", err)
		} else if n > 0 {
			e.log.InfoContext(ctx, "failover: re-drove the work of dead workers", "count", n)
		}
		if n, err := e.Reconcile(ctx, o); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "reconcile", "err", err)
		} else if n > 0 {
			e.log.InfoContext(ctx, "reconcile: re-drove lost work", "executions", n)
		}
	}
}

// heldStep is a running step execution the reconciler re-drives.
type heldStep struct {
	ID         int64  `bun:"step_execution_id"`
	JobName    string `bun:"job_name"`
	JobExecID  int64  `bun:"job_execution_id"`
	StepName   string `bun:"step_name"`
	Parent     *int64 `bun:"parent_step_execution_id"`
	Generation int    `bun:"generation"`
	JobGen     int    `bun:"job_generation"`
	// Trace is the execution's traceparent (see JobExecution.TraceContext).
	Trace *string `bun:"trace_context"`
}

// task is the queue and ID of the task that drives h now.
func (h heldStep) task() (queue, id string) {
	if h.Parent != nil {
		return QueuePartition, partitionTaskID(h.ID, h.Generation)
	}
	return QueueControl, stepTaskID(h.JobExecID, h.JobGen, h.StepName, h.Generation)
}

// heldColumns selects a heldStep from s (step), j (job execution) and i
// (instance).
const heldColumns = `s.step_execution_id, i.job_name, s.job_execution_id, s.step_name, s.parent_step_execution_id,
	s.generation, j.generation AS job_generation, j.trace_context`

// Failover re-drives the partitions and tasklets held by workers whose
// heartbeat is older than o.FailoverAfter, or that left no heartbeat at
// all, and returns how many it re-drove. It first ends the database
// sessions of the dead workers (by their application_name, see
// WorkerOptions.ID), so the row locks a frozen worker holds are released
// at once instead of after the idle-transaction timeout.
func (e *Engine) Failover(ctx context.Context, o ReconcileOptions) (int, error) {
	o.defaults()
	if err := e.terminateDead(ctx, o.FailoverAfter); err != nil {
		e.log.WarnContext(ctx, "failover: could not end the sessions of dead workers (their locks go with the idle timeout)", "err", err)
	}
	var held []heldStep
	var failed []int64
	err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		held, failed = nil, nil
		if err := tx.NewRaw(`SELECT `+heldColumns+`
			FROM batch_step_execution s
			JOIN batch_job_execution j ON j.job_execution_id = s.job_execution_id
			JOIN batch_job_instance i ON i.job_instance_id = j.job_instance_id
			LEFT JOIN batch_worker w ON w.worker_id = s.worker_id
			WHERE s.status IN (?, ?) AND s.worker_id IS NOT NULL
			  AND (w.worker_id IS NULL OR w.heartbeat_at < now() - ?::interval)
			ORDER BY s.step_execution_id
			FOR UPDATE OF s SKIP LOCKED`, StatusStarting, StatusStarted, interval(o.FailoverAfter)).Scan(ctx, &held); err != nil {
			return fmt.Errorf("find the work of dead workers: %w", err)
		}
		for _, h := range held {
			why := fmt.Sprintf("its worker died (no heartbeat for %s)", o.FailoverAfter)
			ended, err := e.redriveHeld(ctx, tx, h, why, o.RedriveLimit)
			if err != nil {
				return err
			}
			if ended {
				failed = append(failed, h.JobExecID)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	e.advanceAll(ctx, failed)
	// Forget workers long gone (their partitions were re-driven above).
	if _, err := e.db.NewDelete().Model((*WorkerInfo)(nil)).
		Where("heartbeat_at < now() - ?::interval", interval(100*o.FailoverAfter+time.Hour)).Exec(ctx); err != nil {
		return len(held), fmt.Errorf("forget dead workers: %w", err)
	}
	return len(held), nil
}

// advanceAll advances the executions jeIDs, logging what fails (the
// reconciler's next pass tries again).
func (e *Engine) advanceAll(ctx context.Context, jeIDs []int64) {
	for _, id := range slices.Compact(slices.Sorted(slices.Values(jeIDs))) {
		if err := e.advance(ctx, id); err != nil {
			e.log.WarnContext(ctx, "reconcile: advance failed", "job_execution_id", id, "err", err)
		}
	}
}

// terminateDead ends the sessions in this database of workers whose
// heartbeat is older than deadAfter, waiting up to a second for each. The
// sessions are chosen first and ended in a second statement: a function
// with effects in a WHERE clause may run for rows the clause then drops.
func (e *Engine) terminateDead(ctx context.Context, deadAfter time.Duration) error {
	var dead []struct {
		PID    int    `bun:"pid"`
		Worker string `bun:"worker_id"`
	}
	if err := e.db.NewRaw(`SELECT a.pid, w.worker_id FROM pg_stat_activity a
		JOIN batch_worker w ON w.worker_id = a.application_name
		WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND w.heartbeat_at < now() - ?::interval`,
		interval(deadAfter)).Scan(ctx, &dead); err != nil {
		return err
	}
	if len(dead) == 0 {
		return nil
	}
	pids := make([]int, len(dead))
	workers := make([]string, len(dead))
	for i, d := range dead {
		pids[i], workers[i] = d.PID, d.Worker
	}
	if _, err := e.db.NewRaw("SELECT pg_terminate_backend(pid, 1000) FROM unnest(?::int[]) AS pid", pgdialect.Array(pids)).Exec(ctx); err != nil {
		return err
	}
	e.log.InfoContext(ctx, "failover: ended the database sessions of dead workers", "sessions", len(pids),
		"workers", slices.Compact(slices.Sorted(slices.Values(workers))))
	return nil
}

// redriveHeld releases a locked running step execution in tx and enqueues
// its next generation in the same transaction; why says what happened to
// its last delivery. Past limit re-drives without progress it ends the step
// FAILED with why instead (ended): a partition at its parent's barrier, a
// tasklet for the caller to advance once tx commits.
func (e *Engine) redriveHeld(ctx context.Context, tx bun.Tx, h heldStep, why string, limit int) (ended bool, err error) {
	ctx = joinTrace(ctx, h.Trace)
	gen, count, err := releaseForRedrive(ctx, tx, h.ID, true)
	if err != nil {
		return false, err
	}
	if limit >= 0 && count > limit {
		msg := fmt.Sprintf("%s: re-driven %d times without progress; the last time %s", RedriveLimitMessage, count-1, why)
		e.log.WarnContext(ctx, "re-drive limit reached: the step fails", "job", h.JobName, "job_execution_id", h.JobExecID,
			"step", h.StepName, "step_execution_id", h.ID, "redrives", count-1, "why", why)
		if h.Parent != nil {
			jeGen := h.JobGen
			return true, e.finishPartition(ctx, tx, &StepExecution{StepExecutionID: h.ID, ParentStepExecutionID: h.Parent}, jeGen, StatusFailed, msg, 0)
		}
		_, err := transition(updateSteps(tx), StatusFailed, msg).Where("step_execution_id = ?", h.ID).Exec(ctx)
		return true, err
	}
	e.log.InfoContext(ctx, "re-driving work", "job", h.JobName, "job_execution_id", h.JobExecID, "step", h.StepName,
		"step_execution_id", h.ID, "generation", gen, "redrive", count, "why", why)
	if h.Parent != nil {
		return false, e.enqueuePartition(ctx, h.ID, gen)
	}
	return false, e.enqueueStep(ctx, h.JobExecID, h.JobGen, h.StepName, gen)
}

// RedriveLimitMessage begins the exit message of a step that failed at
// the re-drive limit.
const RedriveLimitMessage = "re-drive limit reached"

// staleExecution is the condition, over batch_job_execution je, that no
// row of the execution has moved for the interval parameter.
const staleExecution = `greatest(je.last_updated, coalesce((SELECT max(s.last_updated) FROM batch_step_execution s
		WHERE s.job_execution_id = je.job_execution_id), je.last_updated)) < now() - ?::interval`

// Reconcile looks at the running executions that have not moved for
// o.StaleAfter and re-drives their lost work: steps no live worker holds
// whose task is archived or gone from Redis, and control tasks (the job's
// start, a step's start, an aggregation) that are gone. Work still queued
// is left alone. It returns how many executions it re-drove.
func (e *Engine) Reconcile(ctx context.Context, o ReconcileOptions) (int, error) {
	o.defaults()
	var ids []int64
	if err := e.db.NewRaw(`SELECT je.job_execution_id FROM batch_job_execution je
		WHERE je.status IN (?, ?, ?) AND `+staleExecution+` ORDER BY je.job_execution_id`,
		StatusStarting, StatusStarted, StatusStopping, interval(o.StaleAfter)).Scan(ctx, &ids); err != nil {
		return 0, fmt.Errorf("reconcile: find stale executions: %w", err)
	}
	n := 0
	for _, id := range ids {
		redrove, err := e.reconcileExecution(ctx, id, o)
		if err != nil {
			e.log.WarnContext(ctx, "reconcile: re-drive failed", "job_execution_id", id, "err", err)
			continue
		}
		if redrove {
			n++
		}
	}
	return n, nil
}

// reconcileExecution re-drives the lost work of one stale execution. It
// takes the execution once (FOR UPDATE SKIP LOCKED, staleness checked
// again under the lock): a second scheduler skips it, and once this
// commits finds it moved.
func (e *Engine) reconcileExecution(ctx context.Context, jeID int64, o ReconcileOptions) (redrove bool, err error) {
	err = e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		redrove = false
		var locked []int64
		if err := tx.NewRaw(`SELECT je.job_execution_id FROM batch_job_execution je
			WHERE je.job_execution_id = ? AND je.status IN (?, ?, ?) AND `+staleExecution+`
			FOR UPDATE SKIP LOCKED`, jeID, StatusStarting, StatusStarted, StatusStopping, interval(o.StaleAfter)).Scan(ctx, &locked); err != nil {
			return fmt.Errorf("lock execution %d: %w", jeID, err)
		}
		if len(locked) == 0 {
			return nil // another scheduler has it, or it moved
		}
		je, err := loadJobExecution(ctx, tx, jeID)
		if err != nil {
			return err
		}
		ctx = joinTrace(ctx, je.TraceContext)
		if je.Status == StatusStarting {
			lost, _, err := e.taskLost(o.Inspector, QueueControl, jobTaskID(je.JobExecutionID, je.Generation))
			if err != nil || !lost {
				return err
			}
			redrove = true
			e.log.InfoContext(ctx, "reconcile: re-driving the start of an execution whose task is lost", "job_execution_id", jeID)
			if err := bumpGeneration(ctx, tx, je); err != nil {
				return err
			}
			return e.enqueueJob(ctx, je)
		}
		steps, err := e.redriveLostSteps(ctx, tx, je, o)
		if err != nil {
			return err
		}
		control, err := e.redriveLostControl(ctx, tx, je, o)
		redrove = steps || control
		return err
	})
	if err != nil {
		return false, err
	}
	return redrove, e.advance(ctx, jeID)
}

// bumpGeneration moves je to its next generation in tx: the control tasks
// advance enqueues from now on have new IDs.
func bumpGeneration(ctx context.Context, tx bun.Tx, je *JobExecution) error {
	if err := tx.NewRaw(`UPDATE batch_job_execution SET generation = generation + 1, last_updated = now()
		WHERE job_execution_id = ? RETURNING generation`, je.JobExecutionID).Scan(ctx, &je.Generation); err != nil {
		return fmt.Errorf("bump generation of execution %d: %w", je.JobExecutionID, err)
	}
	return nil
}

// redriveLostSteps re-drives, in tx, the running partitions and tasklets
// (and chunk steps not split yet) of je that no live worker holds, idle
// for o.StaleAfter, whose task is gone from Redis.
func (e *Engine) redriveLostSteps(ctx context.Context, tx bun.Tx, je *JobExecution, o ReconcileOptions) (bool, error) {
	var idle []heldStep
	if err := tx.NewRaw(`SELECT `+heldColumns+`
		FROM batch_step_execution s
		JOIN batch_job_execution j ON j.job_execution_id = s.job_execution_id
		JOIN batch_job_instance i ON i.job_instance_id = j.job_instance_id
		WHERE s.job_execution_id = ? AND s.status IN (?, ?)
		  AND (s.parent_step_execution_id IS NOT NULL OR s.partitions_total IS NULL)
		  AND (s.parent_step_execution_id IS NULL OR s.queued_at IS NOT NULL) -- a partition waiting its turn is not lost
		  AND s.last_updated < now() - ?::interval
		  AND NOT EXISTS (SELECT 1 FROM batch_worker w WHERE w.worker_id = s.worker_id
		      AND w.heartbeat_at >= now() - ?::interval AND s.step_execution_id = ANY(w.held))
		ORDER BY s.step_execution_id
		FOR UPDATE OF s SKIP LOCKED`, je.JobExecutionID, StatusStarting, StatusStarted,
		interval(o.StaleAfter), interval(o.FailoverAfter)).Scan(ctx, &idle); err != nil {
		return false, fmt.Errorf("find the idle work of execution %d: %w", je.JobExecutionID, err)
	}
	redrove := false
	for _, h := range idle {
		queue, id := h.task()
		lost, why, err := e.taskLost(o.Inspector, queue, id)
		if err != nil {
			return redrove, err
		}
		if !lost {
			continue // queued, retrying or running: it waits its turn
		}
		if _, err := e.redriveHeld(ctx, tx, h, why, o.RedriveLimit); err != nil {
			return redrove, err
		}
		redrove = true
	}
	return redrove, nil
}

// redriveLostControl checks the control tasks a running execution waits
// for (a step's start, a partitioned step's aggregation); when one is
// gone, it moves the execution to its next generation and enqueues the due
// aggregations under it (advance, after tx, enqueues the due starts).
func (e *Engine) redriveLostControl(ctx context.Context, tx bun.Tx, je *JobExecution, o ReconcileOptions) (bool, error) {
	var due []int64
	if err := tx.NewSelect().Model((*StepExecution)(nil)).Column("step_execution_id").
		Where("job_execution_id = ? AND parent_step_execution_id IS NULL AND status IN (?, ?)", je.JobExecutionID, StatusStarting, StatusStarted).
		Where("partitions_total IS NOT NULL AND partitions_done >= partitions_total").Scan(ctx, &due); err != nil {
		return false, fmt.Errorf("find due aggregations of execution %d: %w", je.JobExecutionID, err)
	}
	if err := e.restartChains(ctx, tx, je); err != nil {
		return false, err
	}
	want := map[string]string{} // task ID → queue
	for _, id := range due {
		want[stepDoneTaskID(id, je.Generation)] = QueueControl
	}
	if je.Status == StatusStarted {
		st, _, err := e.flowOf(ctx, tx, je)
		if err != nil {
			return false, err
		}
		if len(st.failures) == 0 && !st.stopped {
			for _, step := range st.toStart {
				want[stepTaskID(je.JobExecutionID, je.Generation, step, 0)] = QueueControl
			}
		}
	}
	lostAny := false
	for id, queue := range want {
		lost, _, err := e.taskLost(o.Inspector, queue, id)
		if err != nil {
			return false, err
		}
		lostAny = lostAny || lost
	}
	if !lostAny {
		return false, nil
	}
	e.log.InfoContext(ctx, "reconcile: re-driving the lost control tasks of an execution", "job_execution_id", je.JobExecutionID)
	if err := bumpGeneration(ctx, tx, je); err != nil {
		return false, err
	}
	for _, id := range due {
		if err := e.enqueueStepDone(ctx, id, je.Generation); err != nil {
			return false, err
		}
	}
	return true, nil
}

// restartChains queues the next partitions of each running step of je
// whose partitions all wait their turn with none running to queue them
// (the chain of turns broke: a partition ended outside its own
// transaction, by recover or a bulk status change).
func (e *Engine) restartChains(ctx context.Context, tx bun.Tx, je *JobExecution) error {
	var stalled []struct {
		ID   int64  `bun:"step_execution_id"`
		Step string `bun:"step_name"`
	}
	if err := tx.NewRaw(`SELECT p.step_execution_id, p.step_name FROM batch_step_execution p
		WHERE p.job_execution_id = ? AND p.parent_step_execution_id IS NULL AND p.status IN (?, ?) AND p.partitions_total IS NOT NULL
		  AND EXISTS (SELECT 1 FROM batch_step_execution c WHERE c.parent_step_execution_id = p.step_execution_id
		      AND c.queued_at IS NULL AND c.status IN (?, ?))
		  AND NOT EXISTS (SELECT 1 FROM batch_step_execution c WHERE c.parent_step_execution_id = p.step_execution_id
		      AND c.queued_at IS NOT NULL AND c.status IN (?, ?))
		FOR UPDATE OF p SKIP LOCKED`, je.JobExecutionID, StatusStarting, StatusStarted,
		StatusStarting, StatusStarted, StatusStarting, StatusStarted).Scan(ctx, &stalled); err != nil {
		return fmt.Errorf("find stalled partition turns of execution %d: %w", je.JobExecutionID, err)
	}
	job, err := e.reg.Job(je.Instance.JobName)
	if err != nil && len(stalled) > 0 {
		return err
	}
	for _, p := range stalled {
		n := e.opts.PartitionsAtOnce
		if st, ok := job.step(p.Step); ok {
			n = e.atOnce(st)
		}
		e.log.InfoContext(ctx, "reconcile: queueing the partitions waiting their turn", "job_execution_id", je.JobExecutionID, "step", p.Step, "count", n)
		if err := e.queueNext(ctx, tx, p.ID, n); err != nil {
			return err
		}
	}
	return nil
}

// taskLost reports whether the task id of queue is gone from Redis (never
// there, removed, or kept only as a completed one), archived, or active
// with nobody running it, with why; a pending, scheduled or retrying task
// is not lost: it waits its turn. It is asked only about work no live
// worker holds and idle past the stale threshold, so an active task there
// is one whose process died before claiming it (asynq would hand it out
// again only after its lease and recoverer, a minute or two). With no
// inspector every task counts as lost.
func (e *Engine) taskLost(insp *asynq.Inspector, queue, id string) (lost bool, why string, err error) {
	if insp == nil {
		return true, "its work was idle and nobody held it", nil
	}
	info, err := insp.GetTaskInfo(queue, id)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
		return true, "its task was lost from Redis", nil
	case err != nil:
		return false, "", fmt.Errorf("look up task %s: %w", id, err)
	case info.State == asynq.TaskStateArchived:
		return true, fmt.Sprintf("its task was archived after %d retries: %s", info.Retried, info.LastErr), nil
	case info.State == asynq.TaskStateCompleted:
		return true, "its task ended without finishing it", nil
	case info.State == asynq.TaskStateActive:
		return true, "its task was taken by a process that no longer runs it", nil
	}
	return false, "", nil
}

// interval formats d for a Postgres ?::interval parameter.
func interval(d time.Duration) string {
	return fmt.Sprintf("%d milliseconds", d.Milliseconds())
}
