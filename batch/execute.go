package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

)

// fence takes ownership of a step execution for one transaction: it bumps
// the version only if it is still the one this delivery read, which also
// row-locks the step execution until commit. It returns the job's status,
// or errFenced when another delivery moved the version or the step ended.
func fence(ctx context.Context, tx bun.Tx, seID, version int64) (Status, error) {
	var jobStatus string
	err := tx.NewRaw(`UPDATE batch_step_execution AS s
		SET version = s.version + 1, status = ?, start_time = coalesce(s.start_time, clock_timestamp()), last_updated = clock_timestamp()
		FROM batch_job_execution AS j
		WHERE s.step_execution_id = ? AND s.version = ? AND s.status IN (?, ?) AND j.job_execution_id = s.job_execution_id
		RETURNING j.status`, StatusStarted, seID, version, StatusStarting, StatusStarted).Scan(ctx, &jobStatus)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errFenced
	}
	if err != nil {
		return "", fmt.Errorf("fence step execution %d: %w", seID, err)
	}
	return jobStatus, nil
}

// finishPartition ends a partition in tx and counts it at its parent's
// barrier; last reports whether it was the parent's last partition.
func finishPartition(ctx context.Context, tx bun.Tx, se *StepExecution, status Status, msg string, rollbacks int64) (last bool, err error) {
	if _, err := tx.NewUpdate().Model((*StepExecution)(nil)).
		Set("status = ?", status).Set("exit_code = ?", exitCodeFor(status)).Set("exit_message = ?", truncate(msg, 10000)).
		Set("rollback_count = rollback_count + ?", rollbacks).
		Set("end_time = clock_timestamp()").Set("last_updated = clock_timestamp()").
		Where("step_execution_id = ?", se.StepExecutionID).Exec(ctx); err != nil {
		return false, fmt.Errorf("finish partition %d: %w", se.StepExecutionID, err)
	}
	var b struct {
		Done  int `bun:"partitions_done"`
		Total int `bun:"partitions_total"`
	}
	if err := tx.NewRaw(`UPDATE batch_step_execution SET partitions_done = partitions_done + 1, last_updated = clock_timestamp()
		WHERE step_execution_id = ? RETURNING partitions_done, partitions_total`, *se.ParentStepExecutionID).Scan(ctx, &b); err != nil {
		return false, fmt.Errorf("partition barrier of %d: %w", *se.ParentStepExecutionID, err)
	}
	return b.Done == b.Total, nil
}

// handlePartition runs one partition chunk by chunk. Each chunk is one
// transaction: fence, read, process, write, skips, counters, checkpoint.
func (e *Engine) handlePartition(ctx context.Context, t *asynq.Task) error {
	var p stepExecPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	se, err := loadStepExecution(ctx, e.db, p.StepExecutionID)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	if !Running(se.Status) || se.ParentStepExecutionID == nil {
		return nil // finished already: a duplicate delivery
	}
	env, err := e.loadStepEnv(ctx, e.db, se.JobExecutionID, se.StepName)
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnknownJob) {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	}
	m, err := loadStepContext(ctx, e.db, se.StepExecutionID)
	if err != nil {
		return err
	}
	sc := env.stepContext(se, m)
	from := sc.Range.Start
	if k, ok := lastKey(m); ok {
		from = k + 1
	}
	log := e.log.With("job", env.job.Name, "job_execution_id", se.JobExecutionID, "step", se.StepName,
		"step_execution_id", se.StepExecutionID, "partition", deref(se.PartitionKey))
	skips := se.ReadSkipCount + se.ProcessSkipCount + se.WriteSkipCount
	version := se.Version
	var pendingRollbacks int64

	for {
		start := time.Now()
		var out *chunkOutcome
		var last, finished bool
		err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			jobStatus, err := fence(ctx, tx, se.StepExecutionID, version)
			if err != nil {
				return err
			}
			if jobStatus == StatusStopping || jobStatus == StatusStopped {
				finished = true
				last, err = finishPartition(ctx, tx, se, StatusStopped, "stopped between chunks", pendingRollbacks)
				return err
			}
			if out, err = env.step.chunk.run(ctx, tx, sc, from, skips); err != nil {
				return err
			}
			if len(out.skips) > 0 {
				rows := make([]SkipRecord, len(out.skips))
				for i, s := range out.skips {
					rows[i] = SkipRecord{StepExecutionID: se.StepExecutionID, ItemKey: strconv.FormatInt(s.key, 10), Phase: s.phase, Error: truncate(s.err.Error(), 4000)}
				}
				if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
					return fmt.Errorf("record skipped items: %w", err)
				}
				if env.step.onSkip != nil {
					items := make([]SkippedItem, len(out.skips))
					for i, s := range out.skips {
						items[i] = SkippedItem{Key: s.key, Phase: s.phase, Err: s.err}
					}
					if err := env.step.onSkip(ctx, tx, sc, items); err != nil {
						return fmt.Errorf("skip listener: %w", err)
					}
				}
			}
			if _, err := tx.NewUpdate().Model((*StepExecution)(nil)).
				Set("read_count = read_count + ?", out.read).Set("write_count = write_count + ?", out.written).
				Set("filter_count = filter_count + ?", out.filtered).
				Set("process_skip_count = process_skip_count + ?", out.processSkips).
				Set("write_skip_count = write_skip_count + ?", out.writeSkips).
				Set("rollback_count = rollback_count + ?", out.retries+pendingRollbacks).
				Set("commit_count = commit_count + 1").
				Where("step_execution_id = ?", se.StepExecutionID).Exec(ctx); err != nil {
				return fmt.Errorf("count chunk: %w", err)
			}
			if out.read > 0 {
				sc.Context[checkpointKey] = out.lastKey
				if err := saveStepContext(ctx, tx, se.StepExecutionID, sc.Context); err != nil {
					return err
				}
			}
			if out.exhausted {
				finished = true
				last, err = finishPartition(ctx, tx, se, StatusCompleted, "", 0)
				return err
			}
			return nil
		})
		switch {
		case errors.Is(err, errFenced):
			log.InfoContext(ctx, "partition owned by another delivery; leaving it")
			return nil
		case err != nil:
			var sf *stepFailure
			if !errors.As(err, &sf) {
				return fmt.Errorf("partition %d chunk from key %d: %w", se.StepExecutionID, from, err)
			}
			// A business failure: the chunk rolled back; end the partition FAILED.
			log.WarnContext(ctx, "partition failed", "err", sf.err)
			var last bool
			ferr := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := fence(ctx, tx, se.StepExecutionID, version); err != nil {
					return err
				}
				var err error
				last, err = finishPartition(ctx, tx, se, StatusFailed, sf.err.Error(), pendingRollbacks+1)
				return err
			})
			if errors.Is(ferr, errFenced) {
				return nil
			}
			if ferr != nil {
				return ferr
			}
			if last {
				return e.enqueueStepDone(ctx, *se.ParentStepExecutionID)
			}
			return nil
		}
		version++
		pendingRollbacks = 0
		if out != nil {
			e.m.chunk(env.job.Name, se.StepName, out, time.Since(start))
			skips += out.processSkips + out.writeSkips
			if out.read > 0 {
				from = out.lastKey + 1
			}
		}
		if finished {
			if last {
				return e.enqueueStepDone(ctx, *se.ParentStepExecutionID)
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err // shutting down: the committed chunks stay, the task is redelivered
		}
	}
}

// handleStepDone aggregates a partitioned step once all its partitions have
// finished, then advances the flow.
func (e *Engine) handleStepDone(ctx context.Context, t *asynq.Task) error {
	var p stepExecPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	se, err := loadStepExecution(ctx, e.db, p.StepExecutionID)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	env, err := e.loadStepEnv(ctx, e.db, se.JobExecutionID, se.StepName)
	if err != nil {
		return err
	}
	var status Status
	err = e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(se).WherePK().For("UPDATE").Scan(ctx); err != nil {
			return err
		}
		if !Running(se.Status) || se.PartitionsTotal == nil || se.PartitionsDone < *se.PartitionsTotal {
			return nil // aggregated already, or not all partitions done
		}
		var agg struct {
			Read, Write, Filter, ReadSkip, WriteSkip, ProcessSkip, Commit, Rollback int64
			Failed, Stopped                                                         int
			Msg                                                                     string
		}
		if err := tx.NewRaw(`SELECT coalesce(sum(read_count),0) AS read, coalesce(sum(write_count),0) AS write,
				coalesce(sum(filter_count),0) AS filter, coalesce(sum(read_skip_count),0) AS read_skip,
				coalesce(sum(write_skip_count),0) AS write_skip, coalesce(sum(process_skip_count),0) AS process_skip,
				coalesce(sum(commit_count),0) AS commit, coalesce(sum(rollback_count),0) AS rollback,
				count(*) FILTER (WHERE status = ?) AS failed, count(*) FILTER (WHERE status IN (?, ?)) AS stopped,
				coalesce(array_to_string((array_agg(partition_key || ': ' || exit_message ORDER BY step_execution_id) FILTER (WHERE status = ?))[1:3], '; '), '') AS msg
			FROM batch_step_execution WHERE parent_step_execution_id = ?`,
			StatusFailed, StatusStopped, StatusAbandoned, StatusFailed, se.StepExecutionID).Scan(ctx, &agg); err != nil {
			return fmt.Errorf("aggregate partitions of %d: %w", se.StepExecutionID, err)
		}
		status = StatusCompleted
		msg := ""
		switch {
		case agg.Failed > 0:
			status, msg = StatusFailed, fmt.Sprintf("%d of %d partitions failed: %s", agg.Failed, *se.PartitionsTotal, agg.Msg)
		case agg.Stopped > 0:
			status, msg = StatusStopped, fmt.Sprintf("%d of %d partitions stopped", agg.Stopped, *se.PartitionsTotal)
		}
		if err := tx.NewUpdate().Model(se).
			Set("read_count = ?", agg.Read).Set("write_count = ?", agg.Write).Set("filter_count = ?", agg.Filter).
			Set("read_skip_count = ?", agg.ReadSkip).Set("write_skip_count = ?", agg.WriteSkip).
			Set("process_skip_count = ?", agg.ProcessSkip).Set("commit_count = ?", agg.Commit).Set("rollback_count = ?", agg.Rollback).
			Set("status = ?", status).Set("exit_code = ?", exitCodeFor(status)).Set("exit_message = ?", truncate(msg, 10000)).
			Set("end_time = clock_timestamp()").Set("version = version + 1").Set("last_updated = clock_timestamp()").
			WherePK().Returning("*").Scan(ctx); err != nil {
			return fmt.Errorf("finish step %d: %w", se.StepExecutionID, err)
		}
		for _, l := range env.step.listeners {
			if l.AfterStep != nil {
				if err := l.AfterStep(ctx, tx, se, env.params); err != nil {
					return fmt.Errorf("after-step listener of %s: %w", se.StepName, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if status != "" {
		e.log.InfoContext(ctx, "step finished", "job", env.job.Name, "job_execution_id", se.JobExecutionID,
			"step", se.StepName, "step_execution_id", se.StepExecutionID, "status", status,
			"read", se.ReadCount, "write", se.WriteCount, "filter", se.FilterCount,
			"skip", se.ReadSkipCount+se.ProcessSkipCount+se.WriteSkipCount)
	}
	return e.advance(ctx, se.JobExecutionID)
}

// runTasklet calls a tasklet until it reports Finished, one transaction per
// call with the step's version fence, context and counters.
func (e *Engine) runTasklet(ctx context.Context, env *stepEnv, seID int64) error {
	se, err := loadStepExecution(ctx, e.db, seID)
	if err != nil {
		return err
	}
	m, err := loadStepContext(ctx, e.db, seID)
	if err != nil {
		return err
	}
	if len(m) == 0 {
		// A restart resumes the previous execution's context.
		if prev, err := previousStep(ctx, e.db, env.je, env.step.name); err != nil {
			return err
		} else if prev != nil {
			if m, err = loadStepContext(ctx, e.db, prev.StepExecutionID); err != nil {
				return err
			}
		}
	}
	version := se.Version
	first := se.Status == StatusStarting
	for {
		sc := env.stepContext(se, m)
		var done bool
		err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			jobStatus, err := fence(ctx, tx, seID, version)
			if err != nil {
				return err
			}
			if jobStatus == StatusStopping || jobStatus == StatusStopped {
				done = true
				_, err := tx.NewUpdate().Model((*StepExecution)(nil)).
					Set("status = ?", StatusStopped).Set("exit_code = ?", ExitStopped).Set("end_time = clock_timestamp()").
					Where("step_execution_id = ?", seID).Exec(ctx)
				return err
			}
			if first {
				for _, l := range env.step.listeners {
					if l.BeforeStep != nil {
						if err := l.BeforeStep(ctx, tx, se, env.params); err != nil {
							return fmt.Errorf("before-step listener of %s: %w", se.StepName, err)
						}
					}
				}
			}
			rs, err := env.step.tasklet(ctx, tx, sc)
			if err != nil {
				if isInfra(err) {
					return err
				}
				return &stepFailure{err}
			}
			if err := saveStepContext(ctx, tx, seID, sc.Context); err != nil {
				return err
			}
			upd := tx.NewUpdate().Model(se).
				Set("read_count = read_count + ?", sc.Counts.Read).Set("write_count = write_count + ?", sc.Counts.Write).
				Set("filter_count = filter_count + ?", sc.Counts.Filter).Set("commit_count = commit_count + 1").
				WherePK()
			if rs == Finished {
				done = true
				upd = upd.Set("status = ?", StatusCompleted).Set("exit_code = ?", ExitCompleted).Set("end_time = clock_timestamp()")
			}
			if err := upd.Returning("*").Scan(ctx); err != nil {
				return fmt.Errorf("count tasklet: %w", err)
			}
			if done {
				for _, l := range env.step.listeners {
					if l.AfterStep != nil {
						if err := l.AfterStep(ctx, tx, se, env.params); err != nil {
							return fmt.Errorf("after-step listener of %s: %w", se.StepName, err)
						}
					}
				}
			}
			return nil
		})
		var sf *stepFailure
		switch {
		case errors.Is(err, errFenced):
			return nil
		case errors.As(err, &sf):
			return e.failStep(ctx, seID, sf.err)
		case err != nil:
			return err
		}
		version++
		first = false
		if done {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
