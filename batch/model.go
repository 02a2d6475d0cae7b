package batch

// The job repository's bun models: Spring Batch 5's tables (DESIGN §3) with
// our additions (partitions, generations, workers, skipped items). The SQL in
// migrations/ is the source of truth.

import (
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// JobInstance is a job name plus the hash of its identifying parameters.
type JobInstance struct {
	bun.BaseModel `bun:"table:batch_job_instance"`

	JobInstanceID int64     `bun:"job_instance_id,pk,autoincrement" json:"job_instance_id"`
	Version       int64     `bun:"version,notnull" json:"version"`
	JobName       string    `bun:"job_name,notnull" json:"job_name"`
	JobKey        string    `bun:"job_key,notnull" json:"job_key"`
	CreateTime    time.Time `bun:"create_time,nullzero,notnull,default:current_timestamp" json:"create_time"`
}

// JobExecution is one run of a job instance.
type JobExecution struct {
	bun.BaseModel `bun:"table:batch_job_execution"`

	JobExecutionID int64 `bun:"job_execution_id,pk,autoincrement" json:"job_execution_id"`
	Version        int64 `bun:"version,notnull" json:"version"`
	JobInstanceID  int64 `bun:"job_instance_id,notnull" json:"job_instance_id"`
	// JobName is the instance's job name, kept on the execution (filled by
	// a trigger) so lists by job read an index.
	JobName     string     `bun:"job_name,nullzero" json:"job_name"`
	CreateTime  time.Time  `bun:"create_time,nullzero,notnull,default:current_timestamp" json:"create_time"`
	StartTime   *time.Time `bun:"start_time" json:"start_time"`
	EndTime     *time.Time `bun:"end_time" json:"end_time"`
	Status      string     `bun:"status,notnull" json:"status"`
	ExitCode    string     `bun:"exit_code,notnull" json:"exit_code"`
	ExitMessage string     `bun:"exit_message,notnull" json:"exit_message"`
	LastUpdated time.Time  `bun:"last_updated,nullzero,notnull,default:current_timestamp" json:"last_updated"`
	// Generation counts the reconciler's re-drives of the execution; control
	// tasks carry it in their IDs.
	Generation int `bun:"generation,notnull" json:"generation"`
	// TraceContext is the W3C traceparent of the launch: work re-driven
	// later joins the execution's trace. Nil when tracing was off.
	TraceContext *string `bun:"trace_context" json:"-"`

	Instance *JobInstance `bun:"rel:belongs-to,join:job_instance_id=job_instance_id" json:"instance,omitempty"`
}

// JobExecutionParam is one parameter of a job execution.
type JobExecutionParam struct {
	bun.BaseModel `bun:"table:batch_job_execution_params"`

	JobExecutionID int64  `bun:"job_execution_id,pk" json:"job_execution_id"`
	ParameterName  string `bun:"parameter_name,pk" json:"name"`
	ParameterType  string `bun:"parameter_type,notnull" json:"type"`
	ParameterValue string `bun:"parameter_value,notnull" json:"value"`
	Identifying    string `bun:"identifying,notnull" json:"identifying"` // "Y" or "N"
}

// JobExecutionContext is the JSON context of a job execution.
type JobExecutionContext struct {
	bun.BaseModel `bun:"table:batch_job_execution_context"`

	JobExecutionID    int64   `bun:"job_execution_id,pk"`
	ShortContext      string  `bun:"short_context,notnull"`
	SerializedContext *string `bun:"serialized_context"`
}

// StepExecution is one run of a step; a partition's has a parent.
type StepExecution struct {
	bun.BaseModel `bun:"table:batch_step_execution"`

	StepExecutionID       int64      `bun:"step_execution_id,pk,autoincrement" json:"step_execution_id"`
	Version               int64      `bun:"version,notnull" json:"version"`
	StepName              string     `bun:"step_name,notnull" json:"step_name"`
	JobExecutionID        int64      `bun:"job_execution_id,notnull" json:"job_execution_id"`
	ParentStepExecutionID *int64     `bun:"parent_step_execution_id" json:"parent_step_execution_id,omitempty"`
	PartitionKey          *string    `bun:"partition_key" json:"partition_key,omitempty"`
	RangeStart            *int64     `bun:"range_start" json:"range_start,omitempty"`
	RangeEnd              *int64     `bun:"range_end" json:"range_end,omitempty"`
	PartitionsTotal       *int       `bun:"partitions_total" json:"partitions_total,omitempty"`
	PartitionsDone        int        `bun:"partitions_done,notnull" json:"partitions_done"`
	CreateTime            time.Time  `bun:"create_time,nullzero,notnull,default:current_timestamp" json:"create_time"`
	StartTime             *time.Time `bun:"start_time" json:"start_time"`
	EndTime               *time.Time `bun:"end_time" json:"end_time"`
	Status                string     `bun:"status,notnull" json:"status"`
	CommitCount           int64      `bun:"commit_count,notnull" json:"commit_count"`
	ReadCount             int64      `bun:"read_count,notnull" json:"read_count"`
	FilterCount           int64      `bun:"filter_count,notnull" json:"filter_count"`
	WriteCount            int64      `bun:"write_count,notnull" json:"write_count"`
	ReadSkipCount         int64      `bun:"read_skip_count,notnull" json:"read_skip_count"`
	WriteSkipCount        int64      `bun:"write_skip_count,notnull" json:"write_skip_count"`
	ProcessSkipCount      int64      `bun:"process_skip_count,notnull" json:"process_skip_count"`
	RollbackCount         int64      `bun:"rollback_count,notnull" json:"rollback_count"`
	ExitCode              string     `bun:"exit_code,notnull" json:"exit_code"`
	ExitMessage           string     `bun:"exit_message,notnull" json:"exit_message"`
	LastUpdated           time.Time  `bun:"last_updated,nullzero,notnull,default:current_timestamp" json:"last_updated"`
	// Generation counts re-drives and hand-backs of a partition or tasklet;
	// its task carries it, and a delivery of an older generation drops out.
	Generation int `bun:"generation,notnull" json:"generation"`
	// WorkerID is the worker that claimed it last (see WorkerInfo).
	WorkerID *string `bun:"worker_id" json:"worker_id,omitempty"`
	// QueuedAt is when a partition's task was first enqueued; nil while it
	// waits its turn (see ChunkStep.AtOnce).
	QueuedAt *time.Time `bun:"queued_at" json:"queued_at,omitempty"`
	// RedriveCount counts the re-drives (failover or reconcile) since the
	// step last committed progress; past the limit it ends FAILED.
	RedriveCount int `bun:"redrive_count,notnull" json:"redrive_count"`
}

// partitionStepName names partition i of step as Spring Batch's
// partitioner does: "deduct:partition0", "deduct:partition1", ….
func partitionStepName(step string, i int) string { return fmt.Sprintf("%s:partition%d", step, i) }

// baseStepName is the declared step a step execution runs: a partition's
// parent step ("deduct" for "deduct:partition3"), or the name itself.
func baseStepName(name string) string {
	i := strings.LastIndex(name, ":partition")
	if i < 0 {
		return name
	}
	digits := name[i+len(":partition"):]
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return name
	}
	return name[:i]
}

// StepExecutionContext is the JSON context of a step execution; a chunk
// step's holds its reader checkpoint.
type StepExecutionContext struct {
	bun.BaseModel `bun:"table:batch_step_execution_context"`

	StepExecutionID   int64   `bun:"step_execution_id,pk"`
	ShortContext      string  `bun:"short_context,notnull"`
	SerializedContext *string `bun:"serialized_context"`
}

// SkipRecord is a row of batch_skipped_item: an item a step skipped, with
// the phase and the reason.
type SkipRecord struct {
	bun.BaseModel `bun:"table:batch_skipped_item"`

	ID              int64     `bun:"id,pk,autoincrement" json:"id"`
	StepExecutionID int64     `bun:"step_execution_id,notnull" json:"step_execution_id"`
	ItemKey         string    `bun:"item_key,notnull" json:"item_key"`
	Phase           string    `bun:"phase,notnull" json:"phase"`
	Error           string    `bun:"error,notnull" json:"error"`
	CreateTime      time.Time `bun:"create_time,nullzero,notnull,default:current_timestamp" json:"create_time"`
}

// WorkerInfo is a row of batch_worker: a live worker process and its
// heartbeat, kept by Worker.
type WorkerInfo struct {
	bun.BaseModel `bun:"table:batch_worker"`

	WorkerID    string    `bun:"worker_id,pk" json:"worker_id"`
	Hostname    string    `bun:"hostname,notnull" json:"hostname"`
	PID         int       `bun:"pid,notnull" json:"pid"`
	Concurrency int       `bun:"concurrency,notnull" json:"concurrency"`
	State       string    `bun:"state,notnull" json:"state"`
	StartedAt   time.Time `bun:"started_at,nullzero,notnull,default:current_timestamp" json:"started_at"`
	HeartbeatAt time.Time `bun:"heartbeat_at,nullzero,notnull,default:current_timestamp" json:"heartbeat_at"`
	// Held lists the step executions the worker's handlers were running at
	// its last heartbeat: while it beats, those are alive.
	Held []int64 `bun:"held,array" json:"held"`
}
