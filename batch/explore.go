package batch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"
)

// ExecutionSummary is one job execution as operators list it.
type ExecutionSummary struct {
	JobExecutionID int64      `bun:"job_execution_id" json:"job_execution_id"`
	JobInstanceID  int64      `bun:"job_instance_id" json:"job_instance_id"`
	JobName        string     `bun:"job_name" json:"job_name"`
	Status         string     `bun:"status" json:"status"`
	ExitCode       string     `bun:"exit_code" json:"exit_code"`
	ExitMessage    string     `bun:"exit_message" json:"exit_message"`
	CreateTime     time.Time  `bun:"create_time" json:"create_time"`
	StartTime      *time.Time `bun:"start_time" json:"start_time"`
	EndTime        *time.Time `bun:"end_time" json:"end_time"`
	ReadCount      int64      `bun:"read_count" json:"read_count"`
	WriteCount     int64      `bun:"write_count" json:"write_count"`
	FilterCount    int64      `bun:"filter_count" json:"filter_count"`
	SkipCount      int64      `bun:"skip_count" json:"skip_count"`
}

// ExecutionFilter narrows ListExecutions. Zero fields match everything.
type ExecutionFilter struct {
	JobName string
	Status  string
	// From and To bound the creation time: From <= created < To (zero: open).
	From, To time.Time
	// Before pages backwards: executions with a smaller id (keyset).
	Before int64
	// Limit is the page size. Default 50, at most 500.
	Limit int
}

// ListExecutions lists executions newest first, with the counts of their
// top-level steps (live: a running partitioned step's counts are summed
// from its partitions).
func (e *Engine) ListExecutions(ctx context.Context, f ExecutionFilter) ([]ExecutionSummary, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	if f.Limit > 500 {
		f.Limit = 500
	}
	q := e.db.NewSelect().TableExpr("batch_job_execution AS e").
		ColumnExpr("e.job_execution_id, e.job_instance_id, e.job_name, e.status, e.exit_code, e.exit_message, e.create_time, e.start_time, e.end_time").
		ColumnExpr(`c.read_count, c.write_count, c.filter_count, c.skip_count`).
		Join(`CROSS JOIN LATERAL (SELECT coalesce(sum(s.read_count),0) AS read_count, coalesce(sum(s.write_count),0) AS write_count,
			coalesce(sum(s.filter_count),0) AS filter_count,
			coalesce(sum(s.read_skip_count + s.process_skip_count + s.write_skip_count),0) AS skip_count
			FROM batch_step_execution s WHERE s.job_execution_id = e.job_execution_id
			AND ((s.parent_step_execution_id IS NULL AND (s.partitions_total IS NULL OR s.status NOT IN ('STARTING','STARTED')))
			  OR (s.parent_step_execution_id IS NOT NULL AND EXISTS (SELECT 1 FROM batch_step_execution p
			      WHERE p.step_execution_id = s.parent_step_execution_id AND p.status IN ('STARTING','STARTED'))))) AS c`).
		OrderExpr("e.job_execution_id DESC").Limit(int64(f.Limit))
	if f.JobName != "" {
		q = q.Where("e.job_name = ?", f.JobName)
	}
	if f.Status != "" {
		q = q.Where("e.status = ?", f.Status)
	}
	if f.Before > 0 {
		q = q.Where("e.job_execution_id < ?", f.Before)
	}
	if !f.From.IsZero() {
		q = q.Where("e.create_time >= ?", f.From)
	}
	if !f.To.IsZero() {
		q = q.Where("e.create_time < ?", f.To)
	}
	var out []ExecutionSummary
	if err := q.Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	return out, nil
}

// StepDetail is a top-level step execution with its partitions' progress.
type StepDetail struct {
	StepExecution
	// PartitionsByStatus counts the step's partitions by status.
	PartitionsByStatus map[string]int `json:"partitions_by_status,omitempty"`
	// Live counts summed from the partitions while the step runs.
	LiveRead  int64 `json:"live_read"`
	LiveWrite int64 `json:"live_write"`
	LiveSkip  int64 `json:"live_skip"`
	// ItemsPerSecond is the step's pace: while it runs, its running
	// partitions' paces summed; after, items read over its run time.
	ItemsPerSecond *float64 `json:"items_per_second,omitempty"`
	// ETASeconds estimates the time left of a running partitioned step
	// from the share of its key ranges done.
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	// Partitions are the step's partitions (partitioned steps).
	Partitions []PartitionDetail `json:"partitions,omitempty"`
}

// ExecutionDetail is one execution with its parameters, steps and skips.
type ExecutionDetail struct {
	ExecutionSummary
	Params  Params       `json:"params"`
	Steps   []StepDetail `json:"steps"`
	Skipped []SkipRecord `json:"skipped"`
	// Progress is partitions finished over partitions known, 0..1.
	Progress float64 `json:"progress"`
	// Transitions are the flow's transitions taken so far, as FlowPath.
	Transitions []string `json:"transitions"`
}

// Execution returns the detail of execution id, or ErrNotFound.
func (e *Engine) Execution(ctx context.Context, id int64) (*ExecutionDetail, error) {
	je, err := loadJobExecution(ctx, e.db, id)
	if err != nil {
		return nil, err
	}
	d := &ExecutionDetail{ExecutionSummary: ExecutionSummary{
		JobExecutionID: je.JobExecutionID, JobInstanceID: je.JobInstanceID, JobName: je.Instance.JobName,
		Status: je.Status, ExitCode: je.ExitCode, ExitMessage: je.ExitMessage,
		CreateTime: je.CreateTime, StartTime: je.StartTime, EndTime: je.EndTime,
	}}
	if d.Params, err = loadParams(ctx, e.db, id); err != nil {
		return nil, err
	}
	if err := e.stepDetails(ctx, d); err != nil {
		return nil, err
	}
	steps := make(map[string]*StepExecution, len(d.Steps))
	for i := range d.Steps {
		steps[d.Steps[i].StepName] = &d.Steps[i].StepExecution
	}
	if d.Transitions, err = e.flowPath(ctx, je, steps); err != nil && !errors.Is(err, ErrUnknownJob) {
		return nil, err
	}
	if !Running(je.Status) {
		d.Progress = 1
	}
	parts, now, err := e.loadPartitions(ctx, id)
	if err != nil {
		return nil, err
	}
	for i := range d.Steps {
		d.Steps[i].Partitions = parts[d.Steps[i].StepExecutionID]
		stepPace(&d.Steps[i], now)
	}
	if d.Skipped, err = e.Skipped(ctx, id, 0, 100); err != nil {
		return nil, err
	}
	return d, nil
}

// partitionCounts are a partitioned step's partitions of one status.
type partitionCounts struct {
	Parent int64  `bun:"parent_step_execution_id"`
	Status string `bun:"status"`
	N      int    `bun:"n"`
	Read   int64  `bun:"read"`
	Write  int64  `bun:"write"`
	Skip   int64  `bun:"skip"`
}

// stepDetails fills d's steps, live counts and progress.
func (e *Engine) stepDetails(ctx context.Context, d *ExecutionDetail) error {
	id := d.JobExecutionID
	var steps []StepExecution
	if err := e.db.NewSelect().Model(&steps).Where("job_execution_id = ? AND parent_step_execution_id IS NULL", id).
		Order("step_execution_id").Scan(ctx); err != nil {
		return fmt.Errorf("load steps: %w", err)
	}
	var parts []partitionCounts
	if err := e.db.NewRaw(`SELECT parent_step_execution_id, status, count(*) AS n, sum(read_count) AS read, sum(write_count) AS write,
		sum(read_skip_count + process_skip_count + write_skip_count) AS skip
		FROM batch_step_execution WHERE job_execution_id = ? AND parent_step_execution_id IS NOT NULL GROUP BY 1, 2`, id).Scan(ctx, &parts); err != nil {
		return fmt.Errorf("load partitions: %w", err)
	}
	var done, total int
	for _, s := range steps {
		sd, sdone, stotal := stepDetail(s, parts)
		done, total = done+sdone, total+stotal
		d.ReadCount += sd.LiveRead
		d.WriteCount += sd.LiveWrite
		d.SkipCount += sd.LiveSkip
		d.FilterCount += s.FilterCount
		d.Steps = append(d.Steps, sd)
	}
	if total > 0 {
		d.Progress = float64(done) / float64(total)
	}
	return nil
}

// stepDetail sums a step's partitions (a step without them counts as one)
// and returns how many of them have finished, of how many.
func stepDetail(s StepExecution, parts []partitionCounts) (sd StepDetail, done, total int) {
	sd = StepDetail{StepExecution: s}
	for _, p := range parts {
		if p.Parent != s.StepExecutionID {
			continue
		}
		if sd.PartitionsByStatus == nil {
			sd.PartitionsByStatus = map[string]int{}
		}
		sd.PartitionsByStatus[p.Status] += p.N
		sd.LiveRead += p.Read
		sd.LiveWrite += p.Write
		sd.LiveSkip += p.Skip
		total += p.N
		if !Running(p.Status) {
			done += p.N
		}
	}
	if sd.PartitionsByStatus == nil {
		total = 1
		if !Running(s.Status) {
			done = 1
		}
		sd.LiveRead, sd.LiveWrite = s.ReadCount, s.WriteCount
		sd.LiveSkip = s.ReadSkipCount + s.ProcessSkipCount + s.WriteSkipCount
	}
	return sd, done, total
}

// LastExecutions returns the newest execution of each registered job.
// One index lookup per job (batch_job_execution_job_name_idx), however
// many executions the repository holds.
func (e *Engine) LastExecutions(ctx context.Context) (map[string]ExecutionSummary, error) {
	var rows []ExecutionSummary
	err := e.db.NewRaw(`SELECT x.* FROM unnest(?::text[]) AS j(name) CROSS JOIN LATERAL (
			SELECT e.job_execution_id, e.job_instance_id, e.job_name, e.status, e.exit_code,
				e.exit_message, e.create_time, e.start_time, e.end_time
			FROM batch_job_execution e WHERE e.job_name = j.name ORDER BY e.job_execution_id DESC LIMIT 1) x`,
		pgdialect.Array(e.reg.Names())).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("last executions: %w", err)
	}
	out := make(map[string]ExecutionSummary, len(rows))
	for _, r := range rows {
		out[r.JobName] = r
	}
	return out, nil
}

// RunPoint is one finished or running execution in a job's recent history.
type RunPoint struct {
	JobName        string  `bun:"job_name" json:"job_name"`
	JobExecutionID int64   `bun:"job_execution_id" json:"job_execution_id"`
	Status         string  `bun:"status" json:"status"`
	Seconds        float64 `bun:"seconds" json:"seconds"`
}

// RecentRuns returns each registered job's last n executions, oldest
// first, with how long each ran (so far, for a running one), in one query
// of n index entries per job.
func (e *Engine) RecentRuns(ctx context.Context, n int) (map[string][]RunPoint, error) {
	var rows []RunPoint
	err := e.db.NewRaw(`SELECT x.* FROM unnest(?::text[]) AS j(name) CROSS JOIN LATERAL (
			SELECT e.job_name, e.job_execution_id, e.status,
				extract(epoch FROM coalesce(e.end_time, now()) - coalesce(e.start_time, e.create_time))::float8 AS seconds
			FROM batch_job_execution e WHERE e.job_name = j.name ORDER BY e.job_execution_id DESC LIMIT ?) x
		ORDER BY x.job_name, x.job_execution_id`, pgdialect.Array(e.reg.Names()), n).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("recent runs: %w", err)
	}
	out := map[string][]RunPoint{}
	for _, r := range rows {
		out[r.JobName] = append(out[r.JobName], r)
	}
	return out, nil
}
