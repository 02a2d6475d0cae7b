package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Launch starts job name with params p. Spring Batch's rules hold, enforced
// by the database: an instance (name + identifying params) with a COMPLETED
// execution returns ErrAlreadyComplete; one with a running execution returns
// an *AlreadyRunningError; one whose last execution was ABANDONED returns
// ErrAbandoned; one whose last execution FAILED or STOPPED is restarted (a
// new execution that resumes it), unless the job has PreventRestart
// (ErrNotRestartable). A job that declares Parameters refuses unknown keys
// and wrong types (ErrInvalidParams) first. The execution is created
// STARTING and its batch:job task enqueued.
func (e *Engine) Launch(ctx context.Context, name string, p Params) (*JobExecution, error) {
	job, p, err := e.prepareLaunch(name, p)
	if err != nil {
		return nil, err
	}
	return e.launch(ctx, job, p, false)
}

// LaunchNext launches a new instance of job name: p plus run.id one more
// than the largest run.id of the job's executions (1 for the first), as
// Spring's RunIdIncrementer and JobOperator.startNextInstance do. For jobs
// whose business time is not the point: a manual re-export, a backfill.
func (e *Engine) LaunchNext(ctx context.Context, name string, p Params) (*JobExecution, error) {
	if _, ok := p[ParamRunID]; ok {
		return nil, fmt.Errorf("%w: a --next launch chooses run.id itself", ErrInvalidParams)
	}
	job, p, err := e.prepareLaunch(name, p)
	if err != nil {
		return nil, err
	}
	return e.launch(ctx, job, p, true)
}

// prepareLaunch checks and completes a launch's parameters: the job's
// declared keys and types, partitions, Prepare's defaults, the required
// keys; dates are stored in UTC so a restart finds the same instance.
func (e *Engine) prepareLaunch(name string, p Params) (*Job, Params, error) {
	job, err := e.reg.Job(name)
	if err != nil {
		return nil, nil, err
	}
	if p == nil {
		p = Params{}
	}
	if err := job.checkParams(p, false); err != nil {
		return nil, nil, err
	}
	if _, err := partitionsParam(p); err != nil {
		return nil, nil, err
	}
	if v, ok := p[ParamPartitions]; ok && v.Identifying {
		p = p.With(ParamPartitions, v.Value, false)
	}
	if job.Prepare != nil {
		if p, err = job.Prepare(p, e.now()); err != nil {
			return nil, nil, err
		}
	}
	if err := job.checkParams(p, true); err != nil {
		return nil, nil, err
	}
	for k, v := range p {
		if t := job.storedType(k); t == TypeDate {
			p = p.With(k, storedValue(t, v.Value), v.Identifying)
		}
	}
	return job, p, nil
}

func (e *Engine) launch(ctx context.Context, job *Job, p Params, next bool) (je *JobExecution, err error) {
	ctx, span := tracer().Start(ctx, "batch.launch", trace.WithAttributes(attribute.String("batch.job_name", job.Name)))
	defer func() {
		if je != nil {
			span.SetAttributes(attribute.Int64("batch.job_execution_id", je.JobExecutionID))
		}
		endSpan(span, err)
		span.End()
	}()
	err = e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if next {
			var err error
			if p, err = nextRunID(ctx, tx, job.Name, p); err != nil {
				return err
			}
		}
		inst, err := instanceFor(ctx, tx, job, p)
		if err != nil {
			return err
		}
		je, err = createExecution(ctx, tx, job, inst, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	e.m.execution(job.Name, StatusStarting)
	e.m.launched(job.Name)
	e.log.InfoContext(ctx, "job launched", "job", job.Name, "job_execution_id", je.JobExecutionID, "job_instance_id", je.JobInstanceID)
	if err := e.enqueueJob(ctx, je); err != nil {
		return je, fmt.Errorf("execution %d created but not queued (the reconciler will start it): %w", je.JobExecutionID, err)
	}
	return je, nil
}

// instanceFor finds or creates the job instance of p, locked for tx, and
// refuses it by Spring's rules: complete, running, abandoned, or failed or
// stopped in a job that prevents restarts.
func instanceFor(ctx context.Context, tx bun.Tx, job *Job, p Params) (*JobInstance, error) {
	inst := &JobInstance{JobName: job.Name, JobKey: p.JobKey()}
	// DO UPDATE (not NOTHING) so the row is returned and locked: concurrent
	// launches of one instance queue here and see each other's execution.
	if err := tx.NewInsert().Model(inst).
		On("CONFLICT (job_name, job_key) DO UPDATE").Set("job_name = EXCLUDED.job_name").
		Returning("job_instance_id, create_time").Scan(ctx); err != nil {
		return nil, fmt.Errorf("create job instance: %w", err)
	}
	var last JobExecution
	err := tx.NewSelect().Model(&last).Where("job_instance_id = ?", inst.JobInstanceID).
		Order("job_execution_id DESC").Limit(1).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return inst, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load the last execution of instance %d: %w", inst.JobInstanceID, err)
	}
	completed, err := tx.NewSelect().Model((*JobExecution)(nil)).
		Where("job_instance_id = ? AND status = ?", inst.JobInstanceID, StatusCompleted).Exists(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case completed:
		return nil, fmt.Errorf("%s: %w (instance %d)", job.Name, ErrAlreadyComplete, inst.JobInstanceID)
	case Running(last.Status):
		return nil, &AlreadyRunningError{JobName: job.Name, JobExecutionID: last.JobExecutionID}
	case last.Status == StatusAbandoned:
		return nil, fmt.Errorf("%s: %w: execution %d", job.Name, ErrAbandoned, last.JobExecutionID)
	case job.PreventRestart:
		return nil, fmt.Errorf("%s: %w: execution %d ended %s; launch another instance", job.Name, ErrNotRestartable, last.JobExecutionID, last.Status)
	}
	return inst, nil
}

// nextRunID adds run.id = the job's largest run.id + 1 to p, under a lock
// per job name so concurrent --next launches count one after the other.
func nextRunID(ctx context.Context, tx bun.Tx, job string, p Params) (Params, error) {
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('batch.next:' || ?))", job); err != nil {
		return nil, fmt.Errorf("lock run.id of %s: %w", job, err)
	}
	var last int64
	if err := tx.NewRaw(`SELECT coalesce(max(pp.parameter_value::bigint), 0) FROM batch_job_execution_params pp
		JOIN batch_job_execution e ON e.job_execution_id = pp.job_execution_id
		JOIN batch_job_instance i ON i.job_instance_id = e.job_instance_id
		WHERE i.job_name = ? AND pp.parameter_name = ? AND pp.parameter_value ~ '^[0-9]{1,18}$'`, job, ParamRunID).Scan(ctx, &last); err != nil {
		return nil, fmt.Errorf("find the last run.id of %s: %w", job, err)
	}
	return p.With(ParamRunID, strconv.FormatInt(last+1, 10), true), nil
}

// createExecution creates a STARTING execution of inst with its parameters
// and an empty context.
func createExecution(ctx context.Context, tx bun.Tx, job *Job, inst *JobInstance, p Params) (*JobExecution, error) {
	je := &JobExecution{Status: StatusStarting, ExitCode: ExitUnknown, JobInstanceID: inst.JobInstanceID, TraceContext: traceParent(ctx)}
	if _, err := tx.NewInsert().Model(je).Returning("*").Exec(ctx); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return nil, &AlreadyRunningError{JobName: job.Name}
		}
		return nil, fmt.Errorf("create job execution: %w", err)
	}
	rows := make([]JobExecutionParam, 0, len(p))
	for k, v := range p {
		id := "N"
		if v.Identifying {
			id = "Y"
		}
		t := job.storedType(k)
		// Values are as prepareLaunch left them (dates in UTC), or as a
		// restart loaded them.
		rows = append(rows, JobExecutionParam{JobExecutionID: je.JobExecutionID, ParameterName: k, ParameterType: string(t), ParameterValue: v.Value, Identifying: id})
	}
	if len(rows) > 0 {
		if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
			return nil, fmt.Errorf("save job parameters: %w", err)
		}
	}
	if _, err := tx.NewInsert().Model(&JobExecutionContext{JobExecutionID: je.JobExecutionID, ShortContext: "{}"}).Exec(ctx); err != nil {
		return nil, fmt.Errorf("save job context: %w", err)
	}
	je.Instance = inst
	return je, nil
}

// Restart creates a new execution of a FAILED or STOPPED execution's
// instance, with the same parameters; it resumes from the checkpoints.
func (e *Engine) Restart(ctx context.Context, jeID int64) (*JobExecution, error) {
	je, err := loadJobExecution(ctx, e.db, jeID)
	if err != nil {
		return nil, err
	}
	if je.Status != StatusFailed && je.Status != StatusStopped {
		if je.Status == StatusAbandoned {
			return nil, fmt.Errorf("execution %d: %w", jeID, ErrAbandoned)
		}
		return nil, fmt.Errorf("execution %d is %s; only FAILED or STOPPED executions restart: %w", jeID, je.Status, ErrInvalidTransition)
	}
	job, err := e.reg.Job(je.Instance.JobName)
	if err != nil {
		return nil, err
	}
	p, err := loadParams(ctx, e.db, jeID)
	if err != nil {
		return nil, err
	}
	newer, err := e.db.NewSelect().Model((*JobExecution)(nil)).
		Where("job_instance_id = ? AND job_execution_id > ?", je.JobInstanceID, jeID).Exists(ctx)
	if err != nil {
		return nil, err
	}
	if newer {
		return nil, fmt.Errorf("execution %d is not the latest of its instance; restart the latest: %w", jeID, ErrInvalidTransition)
	}
	return e.launch(ctx, job, p, false)
}

// Stop asks a running execution to stop: it becomes STOPPING, and its
// partitions and tasklets end STOPPED between chunks, checkpoints kept.
func (e *Engine) Stop(ctx context.Context, jeID int64) error {
	res, err := e.db.NewUpdate().Model((*JobExecution)(nil)).
		Set("status = ?", StatusStopping).Set("version = version + 1").Set("last_updated = clock_timestamp()").
		Where("job_execution_id = ? AND status IN (?, ?)", jeID, StatusStarting, StatusStarted).Exec(ctx)
	if err != nil {
		return fmt.Errorf("stop execution %d: %w", jeID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		je, err := loadJobExecution(ctx, e.db, jeID)
		if err != nil {
			return err
		}
		return fmt.Errorf("execution %d is %s; only running executions stop: %w", jeID, je.Status, ErrInvalidTransition)
	}
	e.log.InfoContext(ctx, "job stopping", "job_execution_id", jeID)
	// A job between steps has nothing running to notice; advance ends it.
	return e.advance(ctx, jeID)
}

// Abandon marks a STOPPED or FAILED execution (or one stuck STOPPING)
// ABANDONED; its instance can never run again. An execution abandoned
// while STOPPING never finished, so its after-job listeners run then (with
// the status ABANDONED): what they keep in step with the job (an export's
// row) does not stay RUNNING.
func (e *Engine) Abandon(ctx context.Context, jeID int64) error {
	var ended *JobExecution
	var job *Job
	var params Params
	err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		je := new(JobExecution)
		if err := tx.NewSelect().Model(je).Relation("Instance").Where("job_execution.job_execution_id = ?", jeID).For("UPDATE OF job_execution").Scan(ctx); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("execution %d: %w", jeID, ErrNotFound)
			}
			return fmt.Errorf("load execution %d: %w", jeID, err)
		}
		if je.Status != StatusStopped && je.Status != StatusFailed && je.Status != StatusStopping {
			return fmt.Errorf("execution %d is %s; only STOPPED, FAILED or STOPPING executions can be abandoned: %w", jeID, je.Status, ErrInvalidTransition)
		}
		unfinished := je.Status == StatusStopping
		if err := tx.NewUpdate().Model(je).
			Set("status = ?", StatusAbandoned).Set("exit_code = ?", ExitFailed).
			Set("end_time = coalesce(end_time, clock_timestamp())").Set("version = version + 1").Set("last_updated = clock_timestamp()").
			WherePK().Returning("*").Scan(ctx); err != nil {
			return fmt.Errorf("abandon execution %d: %w", jeID, err)
		}
		if _, err := tx.NewUpdate().Model((*StepExecution)(nil)).
			Set("status = ?", StatusAbandoned).Set("end_time = coalesce(end_time, clock_timestamp())").Set("version = version + 1").Set("last_updated = clock_timestamp()").
			Where("job_execution_id = ? AND status IN (?, ?, ?)", jeID, StatusStarting, StatusStarted, StatusStopping).Exec(ctx); err != nil {
			return fmt.Errorf("abandon the steps of execution %d: %w", jeID, err)
		}
		if !unfinished {
			return nil
		}
		var err error
		if job, err = e.reg.Job(je.Instance.JobName); err != nil {
			job = nil
			return nil // a job unknown here has no listeners to run
		}
		if params, err = loadParams(ctx, tx, jeID); err != nil {
			return err
		}
		if je.ExitMessage == "" {
			je.ExitMessage = "abandoned while stopping"
		}
		ended = je
		return runJobListeners(ctx, tx, job, true, je, params)
	})
	if err != nil || ended == nil || job == nil {
		return err
	}
	e.m.execution(job.Name, StatusAbandoned)
	for _, l := range job.Listeners {
		if l.AfterJobCommitted != nil {
			l.AfterJobCommitted(ctx, ended, params)
		}
	}
	return nil
}

// Recover ends a running execution whose processes died and whose tasks
// are gone (Spring Batch 6's JobOperator.recover): the job, its steps and
// their partitions still running are marked FAILED, with end times and the
// reason, and the after-job listeners run, so the execution can be
// restarted or abandoned. It refuses (ErrInvalidTransition) while a live
// worker, one whose heartbeat is younger than liveFor, holds one of its
// steps: stop that execution instead. The reconciler re-drives such an
// execution by itself when its tasks are lost; Recover is for the
// operator who wants it ended now, or when no reconciler runs.
func (e *Engine) Recover(ctx context.Context, jeID int64, liveFor time.Duration) error {
	msg := "recovered: its processes died and its tasks are gone"
	err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		je := new(JobExecution)
		if err := tx.NewSelect().Model(je).Where("job_execution_id = ?", jeID).For("UPDATE").Scan(ctx); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("execution %d: %w", jeID, ErrNotFound)
			}
			return fmt.Errorf("load execution %d: %w", jeID, err)
		}
		if !Running(je.Status) {
			return fmt.Errorf("execution %d is %s; only a running execution is recovered: %w", jeID, je.Status, ErrInvalidTransition)
		}
		var live []string
		if err := tx.NewRaw(`SELECT DISTINCT w.worker_id FROM batch_step_execution s JOIN batch_worker w ON w.worker_id = s.worker_id
			WHERE s.job_execution_id = ? AND s.status IN (?, ?, ?) AND w.heartbeat_at > clock_timestamp() - ?::interval`,
			jeID, StatusStarting, StatusStarted, StatusStopping, interval(liveFor)).Scan(ctx, &live); err != nil {
			return fmt.Errorf("find live workers of execution %d: %w", jeID, err)
		}
		if len(live) > 0 {
			return fmt.Errorf("execution %d is still running on live worker %s; stop it instead: %w", jeID, strings.Join(live, ", "), ErrInvalidTransition)
		}
		_, err := transition(updateSteps(tx), StatusFailed, msg).
			Where("job_execution_id = ? AND status IN (?, ?, ?)", jeID, StatusStarting, StatusStarted, StatusStopping).Exec(ctx)
		if err != nil {
			return fmt.Errorf("recover steps of execution %d: %w", jeID, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.log.WarnContext(ctx, "execution recovered", "job_execution_id", jeID)
	return e.finishJob(ctx, jeID, StatusFailed, ExitFailed, msg)
}
