package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
// new execution that resumes it). The execution is created STARTING and its
// batch:job task enqueued.
func (e *Engine) Launch(ctx context.Context, name string, p Params) (*JobExecution, error) {
	job, err := e.reg.Job(name)
	if err != nil {
		return nil, err
	}
	if p == nil {
		p = Params{}
	}
	if _, err := partitionsParam(p); err != nil {
		return nil, err
	}
	if v, ok := p[ParamPartitions]; ok && v.Identifying {
		p = p.With(ParamPartitions, v.Value, false)
	}
	if job.Prepare != nil {
		if p, err = job.Prepare(p, e.now()); err != nil {
			return nil, err
		}
	}
	return e.launch(ctx, job, p)
}

func (e *Engine) launch(ctx context.Context, job *Job, p Params) (je *JobExecution, err error) {
	ctx, span := tracer().Start(ctx, "batch.launch", trace.WithAttributes(attribute.String("batch.job_name", job.Name)))
	defer func() {
		if je != nil {
			span.SetAttributes(attribute.Int64("batch.job_execution_id", je.JobExecutionID))
		}
		endSpan(span, err)
		span.End()
	}()
	err = e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
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
// refuses it by Spring's rules: complete, running or abandoned.
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
	}
	return inst, nil
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
		rows = append(rows, JobExecutionParam{JobExecutionID: je.JobExecutionID, ParameterName: k, ParameterType: "STRING", ParameterValue: v.Value, Identifying: id})
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
	return e.launch(ctx, job, p)
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
// ABANDONED; its instance can never run again.
func (e *Engine) Abandon(ctx context.Context, jeID int64) error {
	return e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*JobExecution)(nil)).
			Set("status = ?", StatusAbandoned).Set("exit_code = ?", ExitFailed).
			Set("end_time = coalesce(end_time, clock_timestamp())").Set("version = version + 1").Set("last_updated = clock_timestamp()").
			Where("job_execution_id = ? AND status IN (?, ?, ?)", jeID, StatusStopped, StatusFailed, StatusStopping).Exec(ctx)
		if err != nil {
			return fmt.Errorf("abandon execution %d: %w", jeID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			je, err := loadJobExecution(ctx, tx, jeID)
			if err != nil {
				return err
			}
			return fmt.Errorf("execution %d is %s; only STOPPED, FAILED or STOPPING executions can be abandoned: %w", jeID, je.Status, ErrInvalidTransition)
		}
		_, err = tx.NewUpdate().Model((*StepExecution)(nil)).
			Set("status = ?", StatusAbandoned).Set("end_time = coalesce(end_time, clock_timestamp())").Set("version = version + 1").Set("last_updated = clock_timestamp()").
			Where("job_execution_id = ? AND status IN (?, ?, ?)", jeID, StatusStarting, StatusStarted, StatusStopping).Exec(ctx)
		return err
	})
}
