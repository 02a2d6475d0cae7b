package batch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// WorkerOptions tune a Worker. Zero values take the defaults noted.
type WorkerOptions struct {
	// ID names the worker in batch_worker and in the step executions it
	// holds. Default NewWorkerID(). Open the worker's database pool with
	// the ID as its application_name: the reconciler then ends the
	// sessions of a worker it declares dead, releasing the row locks a
	// frozen worker holds at once.
	ID string
	// Concurrency is how many tasks the worker runs at once. Default 10.
	Concurrency int
	// Queues are asynq's queue weights. Default Queues(nil).
	Queues map[string]int
	// ShutdownTimeout bounds Stop. Handlers hand their partitions back at
	// the next chunk boundary; whatever still runs after it (a long
	// tasklet call) is cut off, rolled back and requeued by asynq.
	// Default 25s, under Kubernetes' default 30s grace period.
	ShutdownTimeout time.Duration
	// HeartbeatEvery is how often the worker records in batch_worker that
	// it is alive. Default 1s. The reconciler's FailoverAfter must be
	// several of these.
	HeartbeatEvery time.Duration
	// RetryDelay is asynq's delay before retrying a task that failed on an
	// infrastructure fault. Default RetryDelay.
	RetryDelay asynq.RetryDelayFunc
	// TaskCheckInterval is how often an idle worker looks for tasks.
	// Default 20ms: a flow moves by short control tasks, and each hop
	// waits about half of it (a small job's fixed cost, bench/results.md);
	// an idle worker then asks Redis 50 times a second.
	TaskCheckInterval time.Duration
	// Logger receives the worker's and asynq's logs (asynq's from warn
	// up). Default the engine's.
	Logger *slog.Logger
}

// Worker serves an engine's tasks as one asynq server. It registers itself
// in batch_worker and beats there every HeartbeatEvery, so the reconciler
// can re-drive what it holds within seconds of its death; Stop drains it.
type Worker struct {
	e        *Engine
	redis    asynq.RedisConnOpt
	o        WorkerOptions
	id       string
	host     string
	srv      *asynq.Server
	draining atomic.Bool
	stopBeat context.CancelFunc
	wg       sync.WaitGroup

	mu   sync.Mutex
	held map[int64]int // step execution id → deliveries running it here
}

// workerKey carries the *Worker in a handler's context.
type workerKey struct{}

// NewWorker returns a worker serving e's tasks from redis.
func (e *Engine) NewWorker(redis asynq.RedisConnOpt, o WorkerOptions) *Worker {
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	if o.Queues == nil {
		o.Queues = Queues(nil)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 25 * time.Second
	}
	if o.HeartbeatEvery <= 0 {
		o.HeartbeatEvery = time.Second
	}
	if o.RetryDelay == nil {
		o.RetryDelay = RetryDelay
	}
	if o.ID == "" {
		o.ID = NewWorkerID()
	}
	if o.TaskCheckInterval <= 0 {
		o.TaskCheckInterval = 20 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = e.log
	}
	host, _ := os.Hostname()
	w := &Worker{e: e, redis: redis, o: o, host: host, id: o.ID}
	w.o.Logger = o.Logger.With("worker_id", w.id)
	return w
}

// NewWorkerID returns a new worker ID, host:pid:random, short enough to be
// a Postgres application_name (63 bytes).
func NewWorkerID() string {
	host, _ := os.Hostname()
	if len(host) > 40 {
		host = host[:40]
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(suffix))
}

// RetryDelay is the default delay before asynq retries a task that failed
// on an infrastructure fault: 0.5 s, 1 s, 1.5 s (a Postgres restart is
// usually over by then), then doubling from 2 s up to a minute. 25
// retries take about 18 minutes.
func RetryDelay(n int, _ error, _ *asynq.Task) time.Duration {
	if n < 3 {
		return time.Duration(n+1) * 500 * time.Millisecond
	}
	return min(time.Duration(1<<min(n-2, 6))*time.Second, time.Minute)
}

// ID identifies the worker in batch_worker and in the step executions it
// holds (worker_id).
func (w *Worker) ID() string { return w.id }

// Start registers the worker, starts its heartbeat and serves the engine's
// tasks plus the handlers already on mux (nil: the engine's alone). ctx
// bounds the registration; handlers run on a context that Stop, not ctx,
// ends, so a signal does not cut a chunk short.
func (w *Worker) Start(ctx context.Context, mux *asynq.ServeMux) error {
	if mux == nil {
		mux = asynq.NewServeMux()
	}
	w.e.register(mux)
	if err := w.beat(ctx, "RUNNING"); err != nil {
		return fmt.Errorf("register worker %s: %w", w.id, err)
	}
	base := context.WithValue(context.WithoutCancel(ctx), workerKey{}, w)
	w.srv = asynq.NewServer(w.redis, asynq.Config{
		Concurrency: w.o.Concurrency, Queues: w.o.Queues, RetryDelayFunc: w.o.RetryDelay,
		TaskCheckInterval: w.o.TaskCheckInterval, BaseContext: func() context.Context { return base },
		// Retried tasks move back to their queue within half a second, not
		// asynq's default 5 s: after a Postgres restart, work resumes at once.
		DelayedTaskCheckInterval: 500 * time.Millisecond,
		// asynq waits this long after Stop for handlers still running.
		ShutdownTimeout: max(w.o.ShutdownTimeout-2*time.Second, time.Second),
		Logger:          AsynqLogger(w.o.Logger.With("component", "asynq")), LogLevel: asynq.WarnLevel,
	})
	beatCtx, cancel := context.WithCancel(base)
	w.stopBeat = cancel
	w.wg.Add(1)
	go w.heartbeat(beatCtx)
	if err := w.srv.Start(mux); err != nil {
		cancel()
		w.wg.Wait()
		return fmt.Errorf("start asynq server: %w", err)
	}
	w.o.Logger.InfoContext(ctx, "worker started", "concurrency", w.o.Concurrency)
	return nil
}

// Stop drains the worker: it takes no new task, each running partition or
// tasklet hands itself back to the queue at its next chunk boundary (the
// checkpoint committed, the next generation enqueued), control tasks
// finish, and the worker leaves batch_worker. It returns within about
// ShutdownTimeout.
func (w *Worker) Stop(ctx context.Context) {
	if w.srv == nil {
		return
	}
	started := time.Now()
	w.draining.Store(true)
	if err := w.beat(ctx, "DRAINING"); err != nil {
		w.o.Logger.WarnContext(ctx, "could not mark the worker draining", "err", err)
	}
	w.srv.Stop()     // no new tasks
	w.srv.Shutdown() // waits for the handlers, which hand back at their next chunk
	w.stopBeat()
	w.wg.Wait()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := w.e.db.NewDelete().Model((*WorkerInfo)(nil)).Where("worker_id = ?", w.id).Exec(dctx); err != nil {
		w.o.Logger.WarnContext(ctx, "could not deregister the worker (the reconciler will forget it)", "err", err)
	}
	w.o.Logger.InfoContext(ctx, "worker drained", "took", time.Since(started).Round(time.Millisecond))
}

func (w *Worker) heartbeat(ctx context.Context) {
	defer w.wg.Done()
	t := time.NewTicker(w.o.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		state := "RUNNING"
		if w.draining.Load() {
			state = "DRAINING"
		}
		if err := w.beat(ctx, state); err != nil && ctx.Err() == nil {
			w.o.Logger.WarnContext(ctx, "heartbeat failed", "err", err)
		}
	}
}

// beat records the worker as alive in state, by the database's clock,
// with the step executions its handlers hold.
func (w *Worker) beat(ctx context.Context, state string) error {
	ctx, cancel := context.WithTimeout(ctx, max(2*w.o.HeartbeatEvery, time.Second))
	defer cancel()
	_, err := w.e.db.NewRaw(`INSERT INTO batch_worker (worker_id, hostname, pid, concurrency, state, held)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now(), state = EXCLUDED.state, held = EXCLUDED.held`,
		w.id, w.host, os.Getpid(), w.o.Concurrency, state, pgdialect.Array(w.holding())).Exec(ctx)
	return err
}

// holding lists the step executions the worker's handlers run now.
func (w *Worker) holding() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]int64, 0, len(w.held))
	for id := range w.held {
		out = append(out, id)
	}
	return out
}

// hold records that the handler of ctx runs step execution seID until the
// returned func is called; the heartbeat lists it meanwhile, so the
// reconciler sees the step alive however long its phase takes. Outside a
// worker it does nothing.
func hold(ctx context.Context, seID int64) (release func()) {
	w, ok := ctx.Value(workerKey{}).(*Worker)
	if !ok {
		return func() {}
	}
	w.mu.Lock()
	if w.held == nil {
		w.held = map[int64]int{}
	}
	w.held[seID]++
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.held[seID]--; w.held[seID] <= 0 {
			delete(w.held, seID)
		}
	}
}

// workerID is the ID of the worker running the handler of ctx, or "".
func workerID(ctx context.Context) string {
	if w, ok := ctx.Value(workerKey{}).(*Worker); ok {
		return w.id
	}
	return ""
}

// draining reports whether the worker running the handler of ctx drains.
func draining(ctx context.Context) bool {
	w, ok := ctx.Value(workerKey{}).(*Worker)
	return ok && w.draining.Load()
}

// AsynqLogger adapts l to asynq's logger (for asynq servers and
// schedulers); Fatal logs at error level and exits.
func AsynqLogger(l *slog.Logger) asynq.Logger { return asynqLogger{l} }

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); os.Exit(1) }
