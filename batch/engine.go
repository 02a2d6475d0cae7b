package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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
	// MaxRetry is asynq's retry count for infrastructure faults. Default 25.
	MaxRetry int
	// Metrics records counters; nil records nothing.
	Metrics *Metrics
}

// Engine launches and runs jobs: the launcher and the asynq task handlers.
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
	return &Engine{db: db, client: client, reg: reg, log: opts.Logger, now: opts.Clock, opts: opts, m: opts.Metrics}
}

// Registry returns the engine's job registry.
func (e *Engine) Registry() *Registry { return e.reg }

// DB returns the engine's database.
func (e *Engine) DB() *bun.DB { return e.db }

// Register installs the engine's task handlers on mux.
func (e *Engine) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TaskJob, e.handleJob)
	mux.HandleFunc(TaskStep, e.handleStep)
	mux.HandleFunc(TaskPartition, e.handlePartition)
	mux.HandleFunc(TaskStepDone, e.handleStepDone)
}

type jobPayload struct {
	JobExecutionID int64 `json:"job_execution_id"`
}

type stepPayload struct {
	JobExecutionID int64  `json:"job_execution_id"`
	Step           string `json:"step"`
}

type stepExecPayload struct {
	StepExecutionID int64 `json:"step_execution_id"`
}

// enqueue adds a task with a deterministic ID; a task with that ID still in
// Redis means the work is already queued or running, which is fine.
func (e *Engine) enqueue(ctx context.Context, typ string, payload any, id, queue string, timeout time.Duration) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	opts := []asynq.Option{asynq.TaskID(id), asynq.Queue(queue), asynq.MaxRetry(e.opts.MaxRetry)}
	if timeout > 0 {
		opts = append(opts, asynq.Timeout(timeout))
	}
	_, err = e.client.EnqueueContext(ctx, asynq.NewTask(typ, b), opts...)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s %s: %w", typ, id, err)
	}
	return nil
}

func (e *Engine) enqueueJob(ctx context.Context, jeID int64) error {
	return e.enqueue(ctx, TaskJob, jobPayload{jeID}, "job:"+strconv.FormatInt(jeID, 10), QueueControl, time.Minute)
}

func (e *Engine) enqueueStep(ctx context.Context, jeID int64, step string) error {
	return e.enqueue(ctx, TaskStep, stepPayload{jeID, step}, fmt.Sprintf("step:%d:%s", jeID, step), QueueControl, e.opts.TaskTimeout)
}

func (e *Engine) enqueuePartition(ctx context.Context, seID int64) error {
	return e.enqueue(ctx, TaskPartition, stepExecPayload{seID}, "partition:"+strconv.FormatInt(seID, 10), QueuePartition, e.opts.TaskTimeout)
}

func (e *Engine) enqueueStepDone(ctx context.Context, seID int64) error {
	return e.enqueue(ctx, TaskStepDone, stepExecPayload{seID}, "step-done:"+strconv.FormatInt(seID, 10), QueueControl, time.Minute)
}

func decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("%s: bad payload: %v: %w", t.Type(), err, asynq.SkipRetry)
	}
	return nil
}
