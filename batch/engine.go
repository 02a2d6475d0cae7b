package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
)

// Task type names; see the package doc.
const (
	TaskJob       = "batch:job"
	TaskStep      = "batch:step"
	TaskPartition = "batch:partition"
	TaskStepDone  = "batch:step-done"
)

// Queue names. Workers should serve them with Queues().
const (
	QueueControl   = "batch-control"
	QueuePartition = "batch-partition"
)

// Queues returns the asynq queue weights for a worker serving the engine,
// merged with extra (e.g. the domain's own queues).
func Queues(extra map[string]int) map[string]int {
	q := map[string]int{QueueControl: 6, QueuePartition: 3}
	for k, v := range extra {
		q[k] = v
	}
	return q
}

// Options tune an Engine. Zero values take the defaults noted.
type Options struct {
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
	// Clock returns the time for Prepare defaults and repository times.
	// Default time.Now. Business rules read run.at, never this.
	Clock func() time.Time
	// TaskTimeout bounds one partition or tasklet task. Default 2h.
	TaskTimeout time.Duration
	// MaxRetry is asynq's retry count for infrastructure faults. Default 25;
	// negative: none. A task that exhausts it is archived; the reconciler
	// re-drives its work under a new generation.
	MaxRetry int
	// Metrics records counters; nil records nothing.
	Metrics *Metrics
	// Partitions sizes a partitioned step whose partitioner leaves the
	// count to the engine (see StepContext.Partitions). Default
	// FixedPartitions(MinPartitions); AutoPartitions follows the fleet.
	Partitions Sizer
	// FixedSize says Partitions is a fixed count (PARTITIONS=N), which the
	// engine uses as given; an automatic one is capped at PartitionsPerSlot
	// partitions per partition at once. Default false.
	FixedSize bool
	// PartitionsAtOnce is how many partitions of one step run at once,
	// fleet-wide, unless the step says (ChunkStep.AtOnce): what Postgres
	// can serve, not the worker slots. Default DefaultPartitionsAtOnce.
	PartitionsAtOnce int
}

// DefaultPartitionsAtOnce is Options.PartitionsAtOnce's default: about the
// cores of the Postgres that serves the steps (PARTITIONS_AT_ONCE); more
// transactions at once than its cores only queue (bench/results.md).
const DefaultPartitionsAtOnce = 4

// Engine launches and runs jobs: the launcher, the asynq task handlers (run
// them with a Worker) and the reconciler.
type Engine struct {
	db     *bun.DB
	client *asynq.Client
	reg    *Registry
	log    *slog.Logger
	now    func() time.Time
	opts   Options
	m      *Metrics
}

// New returns an engine over db (the job repository and the domain data),
// enqueueing through client.
func New(db *bun.DB, client *asynq.Client, reg *Registry, opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.TaskTimeout == 0 {
		opts.TaskTimeout = 2 * time.Hour
	}
	if opts.MaxRetry == 0 {
		opts.MaxRetry = 25
	}
	opts.MaxRetry = max(opts.MaxRetry, 0)
	if opts.Partitions == nil {
		opts.Partitions = FixedPartitions(MinPartitions)
	}
	if opts.PartitionsAtOnce <= 0 {
		opts.PartitionsAtOnce = DefaultPartitionsAtOnce
	}
	return &Engine{db: db, client: client, reg: reg, log: opts.Logger, now: opts.Clock, opts: opts, m: opts.Metrics}
}

// Registry returns the engine's job registry.
func (e *Engine) Registry() *Registry { return e.reg }

// DB returns the engine's database.
func (e *Engine) DB() *bun.DB { return e.db }

// register installs the engine's task handlers on mux.
func (e *Engine) register(mux *asynq.ServeMux) {
	mux.HandleFunc(TaskJob, traced("batch.job", e.handleJob))
	mux.HandleFunc(TaskStep, traced("batch.step", e.handleStep))
	mux.HandleFunc(TaskPartition, traced("batch.partition", e.handlePartition))
	mux.HandleFunc(TaskStepDone, traced("batch.step-done", e.handleStepDone))
}

type jobPayload struct {
	JobExecutionID int64 `json:"job_execution_id"`
}

type stepPayload struct {
	JobExecutionID int64  `json:"job_execution_id"`
	Step           string `json:"step"`
	// Generation is the step execution's generation this task drives.
	Generation int `json:"generation,omitempty"`
}

type stepExecPayload struct {
	StepExecutionID int64 `json:"step_execution_id"`
	// Generation is the partition's generation this task drives.
	Generation int `json:"generation,omitempty"`
}

// enqueue adds a task under id. The IDs name the work and its generation,
// so a conflict means this very task is queued, running or archived
// already; a re-drive that must reach the queue uses a new generation
// (see the reconciler).
func (e *Engine) enqueue(ctx context.Context, typ string, payload any, id, queue string, timeout time.Duration) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	opts := []asynq.Option{asynq.TaskID(id), asynq.Queue(queue), asynq.MaxRetry(e.opts.MaxRetry)}
	if timeout > 0 {
		opts = append(opts, asynq.Timeout(timeout))
	}
	_, err = e.client.EnqueueContext(ctx, asynq.NewTaskWithHeaders(typ, b, traceHeaders(ctx)), opts...)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s %s: %w", typ, id, err)
	}
	return nil
}

// The task IDs (see the package doc): each names its work and generation.
func jobTaskID(jeID int64, jeGen int) string { return fmt.Sprintf("job:%d:%d", jeID, jeGen) }
func stepTaskID(jeID int64, jeGen int, step string, stepGen int) string {
	return fmt.Sprintf("step:%d:%s:%d.%d", jeID, step, jeGen, stepGen)
}
func partitionTaskID(seID int64, gen int) string  { return fmt.Sprintf("partition:%d:%d", seID, gen) }
func stepDoneTaskID(seID int64, jeGen int) string { return fmt.Sprintf("step-done:%d:%d", seID, jeGen) }

// enqueueJob queues the execution's job task under its generation.
func (e *Engine) enqueueJob(ctx context.Context, je *JobExecution) error {
	// TaskTimeout, not a minute: the job task may split its first step and
	// run it when it has one partition (see advanceFlow).
	return e.enqueue(ctx, TaskJob, jobPayload{je.JobExecutionID}, jobTaskID(je.JobExecutionID, je.Generation), QueueControl, e.opts.TaskTimeout)
}

// enqueueStep queues a step task: jeGen is the job execution's generation,
// stepGen the step execution's (0 before it exists).
func (e *Engine) enqueueStep(ctx context.Context, jeID int64, jeGen int, step string, stepGen int) error {
	return e.enqueue(ctx, TaskStep, stepPayload{jeID, step, stepGen}, stepTaskID(jeID, jeGen, step, stepGen), QueueControl, e.opts.TaskTimeout)
}

// enqueuePartition queues generation gen of partition seID.
func (e *Engine) enqueuePartition(ctx context.Context, seID int64, gen int) error {
	return e.enqueue(ctx, TaskPartition, stepExecPayload{seID, gen}, partitionTaskID(seID, gen), QueuePartition, e.opts.TaskTimeout)
}

// enqueueStepDone queues the aggregation of partitioned step seID.
func (e *Engine) enqueueStepDone(ctx context.Context, seID int64, jeGen int) error {
	// TaskTimeout: the aggregation may start the next step (advanceFlow).
	return e.enqueue(ctx, TaskStepDone, stepExecPayload{StepExecutionID: seID}, stepDoneTaskID(seID, jeGen), QueueControl, e.opts.TaskTimeout)
}

// decode reads a task's payload. A malformed payload names no execution
// that could be left without a task, so it is archived at once.
func decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("%s: bad payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}
