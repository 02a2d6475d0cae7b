package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// partitionRun is one delivery of a partition task. It claims the partition
// for its generation, then commits it chunk by chunk until the partition
// ends, the job stops, the worker drains (the partition is handed back) or
// another delivery takes it over (a fence fails: this one leaves).
type partitionRun struct {
	e         *Engine
	env       *stepEnv
	se        *StepExecution
	sc        *StepContext
	log       *slog.Logger
	version   int64
	jobStatus Status
	from      int64 // the next chunk's first key
	skips     int64 // items skipped so far (for the skip limit)
	rollbacks int64 // rolled-back attempts not yet counted
	ended     bool  // this delivery ended the partition
}

// handlePartition runs one partition task.
func (e *Engine) handlePartition(ctx context.Context, t *asynq.Task) error {
	var p stepExecPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	r, err := e.claimPartition(ctx, p)
	if err != nil || r == nil {
		return err
	}
	release := hold(ctx, r.se.StepExecutionID)
	err = r.run(ctx)
	release()
	if err != nil || !r.ended {
		return err
	}
	// The last partition to end aggregates its step right away (the
	// batch:step-done task it enqueued then finds it done): one hop less.
	return e.stepDoneIfDue(ctx, *r.se.ParentStepExecutionID)
}

// claimPartition loads and claims the partition of p; nil when there is
// nothing to do (it ended, or a newer generation drives it).
func (e *Engine) claimPartition(ctx context.Context, p stepExecPayload) (*partitionRun, error) {
	se, err := loadStepExecution(ctx, e.db, p.StepExecutionID)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", err, asynq.SkipRetry) // no execution to leave without a task
	}
	if err != nil {
		return nil, err
	}
	if !Running(se.Status) || se.ParentStepExecutionID == nil || p.Generation < se.Generation {
		return nil, nil
	}
	env, err := e.loadStepEnv(ctx, e.db, se.JobExecutionID, baseStepName(se.StepName))
	if errors.Is(err, ErrUnknownStep) {
		// No retry can heal it: the partition fails now, with the reason.
		return nil, errors.Join(e.failPartitionNow(ctx, se, err.Error()), asynq.SkipRetry)
	}
	if err != nil {
		return nil, err // a job unknown here: another worker may know it
	}
	c, err := claim(ctx, e.db, se.StepExecutionID, p.Generation, workerID(ctx))
	if errors.Is(err, errFenced) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := loadStepContext(ctx, e.db, se.StepExecutionID)
	if err != nil {
		return nil, err
	}
	r := &partitionRun{e: e, env: env, se: se, sc: env.stepContext(se, m), version: c.Version, jobStatus: c.JobStatus,
		skips: se.ReadSkipCount + se.ProcessSkipCount + se.WriteSkipCount}
	r.from = r.sc.Range.Start
	if k, ok := lastKey(m); ok {
		r.from = k + 1
	}
	r.log = e.log.With("job", env.job.Name, "job_execution_id", se.JobExecutionID, "step", se.StepName,
		"step_execution_id", se.StepExecutionID, "partition", deref(se.PartitionKey))
	return r, nil
}

// failPartitionNow ends a running partition FAILED with msg, outside any
// delivery's ownership (its step is unknown here: nothing can run it).
func (e *Engine) failPartitionNow(ctx context.Context, se *StepExecution, msg string) error {
	return e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var gen int
		if err := tx.NewRaw(`SELECT j.generation FROM batch_step_execution s JOIN batch_job_execution j USING (job_execution_id)
			WHERE s.step_execution_id = ? AND s.status IN (?, ?) FOR UPDATE OF s`, se.StepExecutionID, StatusStarting, StatusStarted).Scan(ctx, &gen); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return err
		}
		return e.finishPartition(ctx, tx, se, gen, StatusFailed, msg, 0)
	})
}

// run commits chunks until the partition ends or this delivery leaves it.
func (r *partitionRun) run(ctx context.Context) error {
	for {
		switch {
		case stopping(r.jobStatus):
			return r.end(ctx, StatusStopped, "stopped between chunks")
		case draining(ctx):
			return r.handBack(ctx)
		}
		start := time.Now()
		r.sc.ChunkStart = r.from
		c, err := r.chunk(ctx)
		if err != nil {
			return r.fault(ctx, err)
		}
		r.e.m.chunk(r.env.job.Name, r.env.step.name, c, time.Since(start))
		r.skips += c.processSkips + c.writeSkips
		if c.exhausted {
			return nil
		}
		r.from = c.lastKey + 1
		if err := ctx.Err(); err != nil {
			return err // shutting down: the committed chunks stay, the task is redelivered
		}
	}
}

// chunk reads, processes and commits the next chunk, in a span with its
// counts.
func (r *partitionRun) chunk(ctx context.Context) (*chunk, error) {
	ctx, span := tracer().Start(ctx, "batch.chunk", trace.WithAttributes(attribute.String("batch.step_name", r.env.step.name),
		attribute.Int64("batch.step_execution_id", r.se.StepExecutionID), attribute.Int64("batch.from_key", r.from)))
	defer span.End()
	c, err := r.env.step.chunk.prepare(ctx, r.e.db, r.sc, r.from, r.skips)
	if err == nil {
		w := time.Now()
		err = r.commitChunk(ctx, c)
		c.writeTime = time.Since(w)
		span.SetAttributes(attribute.Int64("batch.read_count", c.read), attribute.Int64("batch.write_count", c.written),
			attribute.Int64("batch.skip_count", c.processSkips+c.writeSkips))
	}
	endSpan(span, err)
	return c, err
}

// fault decides what an error of a chunk means for the partition.
func (r *partitionRun) fault(ctx context.Context, err error) error {
	var sf *stepFailure
	switch {
	case errors.Is(err, errFenced):
		r.log.InfoContext(ctx, "partition owned by another delivery; leaving it")
		return nil
	case errors.As(err, &sf):
		r.log.WarnContext(ctx, "partition failed", "err", sf.err)
		r.rollbacks++
		return r.end(ctx, StatusFailed, sf.err.Error())
	}
	return fmt.Errorf("partition %d chunk from key %d: %w", r.se.StepExecutionID, r.from, err) // infrastructure: asynq retries
}

// commitChunk writes a prepared chunk in one transaction with its fence,
// counters and checkpoint (and, after the last chunk, the partition's
// end). The common case (commitFast) takes one repository statement and
// the writer; a chunk with skipped items, or whose write fails with a
// skippable error, is written item by item under savepoints instead
// (commitSlow). A write the RetryPolicy retries rolls the transaction
// back and is tried again after the backoff, outside the transaction.
func (r *partitionRun) commitChunk(ctx context.Context, c *chunk) error {
	r.sc.ChunkEnd, r.sc.ChunkItems = c.lastKey, int(c.toWrite)
	policy := r.env.step.chunk.retryPolicy()
	slow := len(c.skips) > 0
	for attempt := 0; ; attempt++ {
		var err error
		if slow {
			err = r.commitSlow(ctx, c, attempt < policy.Limit)
		} else {
			err = r.commitFast(ctx, c, attempt < policy.Limit)
		}
		var rw *retryWrite
		var iw *isolateWrite
		switch {
		case errors.As(err, &rw):
			r.rollbacks++
			if err := sleep(ctx, policy.backoff(attempt+1)); err != nil {
				return err
			}
			continue
		case errors.As(err, &iw):
			r.rollbacks++
			slow = true
			continue
		case err != nil:
			return err
		}
		r.version++ // the fence's
		r.rollbacks = 0
		return nil
	}
}

// commitFast commits a chunk with one repository statement (recordFast:
// fence, counters as if every item is written, checkpoint and, after the
// last chunk, the partition's end), then the writer on every item at once,
// and after the last chunk the parent's barrier. A failed write rolls it
// all back.
func (r *partitionRun) commitFast(ctx context.Context, c *chunk, mayRetry bool) error {
	return r.e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		js, err := r.recordFast(ctx, tx, c)
		if err != nil {
			return err
		}
		r.jobStatus = js
		if err := r.env.step.chunk.writeAll(ctx, tx, r.sc, c, r.skips, mayRetry); err != nil {
			return err
		}
		if c.exhausted {
			r.ended = true
			return r.e.partitionDone(ctx, tx, r.se, r.env.je.Generation)
		}
		return nil
	})
}

// recordFast is the fence, the chunk's counters, the checkpoint and, after
// the last chunk, the partition's COMPLETED, in one statement; it returns
// the job's status, or errFenced when another delivery moved the version.
func (r *partitionRun) recordFast(ctx context.Context, tx bun.Tx, c *chunk) (Status, error) {
	end := ""
	if c.exhausted {
		end = `, status = '` + StatusCompleted + `', exit_code = '` + ExitCompleted + `', exit_message = '', end_time = clock_timestamp()`
	}
	args := []any{c.read, c.toWrite, c.filtered, r.rollbacks, r.se.StepExecutionID, r.version, StatusStarting, StatusStarted}
	checkpoint := ""
	if c.read > 0 {
		r.sc.Context[checkpointKey] = c.lastKey
		short, ser, err := encodeContext(r.sc.Context)
		if err != nil {
			return "", err
		}
		checkpoint = `, c AS (INSERT INTO batch_step_execution_context (step_execution_id, short_context, serialized_context)
			SELECT ?, ?, ? FROM s ON CONFLICT (step_execution_id) DO UPDATE
			SET short_context = EXCLUDED.short_context, serialized_context = EXCLUDED.serialized_context)`
		args = append(args, r.se.StepExecutionID, short, ser)
	}
	var jobStatus string
	err := tx.NewRaw(`WITH s AS (UPDATE batch_step_execution AS s SET version = s.version + 1, last_updated = clock_timestamp(),
			read_count = s.read_count + ?, write_count = s.write_count + ?, filter_count = s.filter_count + ?,
			rollback_count = s.rollback_count + ?, commit_count = s.commit_count + 1, redrive_count = 0`+end+`
		FROM batch_job_execution AS j
		WHERE s.step_execution_id = ? AND s.version = ? AND s.status IN (?, ?) AND j.job_execution_id = s.job_execution_id
		RETURNING j.status)`+checkpoint+` SELECT status FROM s`, args...).Scan(ctx, &jobStatus)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errFenced
	}
	if err != nil {
		return "", fmt.Errorf("record chunk of step execution %d: %w", r.se.StepExecutionID, err)
	}
	return jobStatus, nil
}

// commitSlow commits a chunk as it was before the fast path: the fence,
// then the write item by item where it fails (under savepoints, to skip
// the bad items), then skips, counters and checkpoint (record).
func (r *partitionRun) commitSlow(ctx context.Context, c *chunk, mayRetry bool) error {
	return r.e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		js, err := fence(ctx, tx, r.se.StepExecutionID, r.version)
		if err != nil {
			return err
		}
		r.jobStatus = js
		if err := r.env.step.chunk.write(ctx, tx, r.sc, c, r.skips+c.processSkips, mayRetry); err != nil {
			return err
		}
		return r.record(ctx, tx, c)
	})
}

// record writes a chunk's skipped items, counters and checkpoint in tx, and
// ends the partition after its last chunk.
func (r *partitionRun) record(ctx context.Context, tx bun.Tx, c *chunk) error {
	if err := r.recordSkips(ctx, tx, c); err != nil {
		return err
	}
	if _, err := tx.NewUpdate().Model((*StepExecution)(nil)).
		Set("read_count = read_count + ?", c.read).Set("write_count = write_count + ?", c.written).
		Set("filter_count = filter_count + ?", c.filtered).
		Set("process_skip_count = process_skip_count + ?", c.processSkips).
		Set("write_skip_count = write_skip_count + ?", c.writeSkips).
		Set("rollback_count = rollback_count + ?", r.rollbacks).
		Set("commit_count = commit_count + 1").Set("redrive_count = 0").
		Where("step_execution_id = ?", r.se.StepExecutionID).Exec(ctx); err != nil {
		return fmt.Errorf("count chunk: %w", err)
	}
	if c.read > 0 {
		r.sc.Context[checkpointKey] = c.lastKey
		if err := saveStepContext(ctx, tx, r.se.StepExecutionID, r.sc.Context); err != nil {
			return err
		}
	}
	if c.exhausted {
		r.ended = true
		return r.e.finishPartition(ctx, tx, r.se, r.env.je.Generation, StatusCompleted, "", 0)
	}
	return nil
}

// recordSkips records a chunk's skipped items and runs the skip listener.
func (r *partitionRun) recordSkips(ctx context.Context, tx bun.Tx, c *chunk) error {
	if len(c.skips) == 0 {
		return nil
	}
	rows := make([]SkipRecord, len(c.skips))
	items := make([]SkippedItem, len(c.skips))
	for i, s := range c.skips {
		rows[i] = SkipRecord{StepExecutionID: r.se.StepExecutionID, ItemKey: strconv.FormatInt(s.key, 10), Phase: s.phase, Error: truncate(s.err.Error(), 4000)}
		items[i] = SkippedItem{Key: s.key, Phase: s.phase, Err: s.err}
	}
	if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("record skipped items: %w", err)
	}
	if r.env.step.onSkip != nil {
		if err := r.env.step.onSkip(ctx, tx, r.sc, items); err != nil {
			return fmt.Errorf("skip listener: %w", err)
		}
	}
	return nil
}

// end ends the partition with status (STOPPED or FAILED) under its fence.
func (r *partitionRun) end(ctx context.Context, status Status, msg string) error {
	err := r.e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := fence(ctx, tx, r.se.StepExecutionID, r.version); err != nil {
			return err
		}
		r.ended = true
		return r.e.finishPartition(ctx, tx, r.se, r.env.je.Generation, status, msg, r.rollbacks)
	})
	if errors.Is(err, errFenced) {
		return nil
	}
	return err
}

// handBack gives the partition back to the queue at a chunk boundary (the
// worker is draining): the next generation's task is enqueued in the
// transaction that releases it, with the checkpoint already committed.
func (r *partitionRun) handBack(ctx context.Context) error {
	err := r.e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := fence(ctx, tx, r.se.StepExecutionID, r.version); err != nil {
			return err
		}
		gen, _, err := releaseForRedrive(ctx, tx, r.se.StepExecutionID, false)
		if err != nil {
			return err
		}
		return r.e.enqueuePartition(ctx, r.se.StepExecutionID, gen)
	})
	if errors.Is(err, errFenced) {
		return nil
	}
	if err == nil {
		r.log.InfoContext(ctx, "partition handed back: the worker is draining", "next_key", r.from)
	}
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
