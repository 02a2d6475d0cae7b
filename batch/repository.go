package batch

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
)

// This file holds the job repository's reads and writes that are shared by
// the launcher, the task handlers and the operator views.

const shortContextMax = 2500

func loadJobExecution(ctx context.Context, db bun.IDB, id int64) (*JobExecution, error) {
	je := new(JobExecution)
	err := db.NewSelect().Model(je).Relation("Instance").Where("job_execution.job_execution_id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("job execution %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load job execution %d: %w", id, err)
	}
	return je, nil
}

func loadStepExecution(ctx context.Context, db bun.IDB, id int64) (*StepExecution, error) {
	se := new(StepExecution)
	err := db.NewSelect().Model(se).Where("step_execution_id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("step execution %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load step execution %d: %w", id, err)
	}
	return se, nil
}

func loadParams(ctx context.Context, db bun.IDB, jeID int64) (Params, error) {
	var rows []JobExecutionParam
	if err := db.NewSelect().Model(&rows).Where("job_execution_id = ?", jeID).Scan(ctx); err != nil {
		return nil, fmt.Errorf("load params of execution %d: %w", jeID, err)
	}
	p := Params{}
	for _, r := range rows {
		p[r.ParameterName] = Param{Value: r.ParameterValue, Identifying: r.Identifying == "Y"}
	}
	return p, nil
}

func encodeContext(m map[string]any) (short string, serialized *string, err error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", nil, fmt.Errorf("encode execution context: %w", err)
	}
	s := string(b)
	if len(s) <= shortContextMax {
		return s, nil, nil
	}
	return truncate(s, shortContextMax), &s, nil
}

func decodeContext(short string, serialized *string) (map[string]any, error) {
	s := short
	if serialized != nil {
		s = *serialized
	}
	m := map[string]any{}
	if s == "" {
		return m, nil
	}
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode execution context: %w", err)
	}
	return m, nil
}

func loadStepContext(ctx context.Context, db bun.IDB, seID int64) (map[string]any, error) {
	var c StepExecutionContext
	err := db.NewSelect().Model(&c).Where("step_execution_id = ?", seID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load context of step execution %d: %w", seID, err)
	}
	return decodeContext(c.ShortContext, c.SerializedContext)
}

func saveStepContext(ctx context.Context, db bun.IDB, seID int64, m map[string]any) error {
	short, ser, err := encodeContext(m)
	if err != nil {
		return err
	}
	_, err = db.NewInsert().Model(&StepExecutionContext{StepExecutionID: seID, ShortContext: short, SerializedContext: ser}).
		On("CONFLICT (step_execution_id) DO UPDATE").
		Set("short_context = EXCLUDED.short_context, serialized_context = EXCLUDED.serialized_context").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("save context of step execution %d: %w", seID, err)
	}
	return nil
}

// lastKey reads a chunk step's checkpoint from its context.
func lastKey(m map[string]any) (int64, bool) {
	switch v := m[checkpointKey].(type) {
	case json.Number:
		n, err := v.Int64()
		return n, err == nil
	case float64:
		return int64(v), true
	case int64:
		return v, true
	}
	return 0, false
}

// checkpointKey holds a chunk step's last committed key in its context.
const checkpointKey = "batch.last_key"

// topSteps returns the top-level step executions of a job execution by name.
func topSteps(ctx context.Context, db bun.IDB, jeID int64) (map[string]*StepExecution, error) {
	var rows []*StepExecution
	err := db.NewSelect().Model(&rows).
		Where("job_execution_id = ? AND parent_step_execution_id IS NULL", jeID).Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("load steps of execution %d: %w", jeID, err)
	}
	out := make(map[string]*StepExecution, len(rows))
	for _, r := range rows {
		out[r.StepName] = r
	}
	return out, nil
}

// completedEarlier returns, by step name, the latest COMPLETED top-level
// step execution of the instance's earlier executions; a restart skips
// those steps (unless they allow a start when complete) and routes the
// flow by their exit status.
func completedEarlier(ctx context.Context, db bun.IDB, instanceID, beforeJE int64) (map[string]*StepExecution, error) {
	var rows []*StepExecution
	err := db.NewSelect().Model(&rows).DistinctOn("step_execution.step_name").
		Join("JOIN batch_job_execution AS j ON j.job_execution_id = step_execution.job_execution_id").
		Where("j.job_instance_id = ? AND j.job_execution_id < ? AND step_execution.parent_step_execution_id IS NULL AND step_execution.status = ?", instanceID, beforeJE, StatusCompleted).
		OrderExpr("step_execution.step_name, step_execution.step_execution_id DESC").
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("load completed steps of instance %d: %w", instanceID, err)
	}
	out := make(map[string]*StepExecution, len(rows))
	for _, r := range rows {
		out[r.StepName] = r
	}
	return out, nil
}
