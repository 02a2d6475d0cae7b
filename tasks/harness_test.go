package tasks_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/notify"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
)

// runAt is the business time the tests run their jobs at.
var runAt = time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)

type bundle struct {
	db     *testenv.DB
	engine *batch.Engine
	client *asynq.Client
	store  *storage.Local
}

type options struct {
	notifier notify.Notifier
	// wrapStore, when set, wraps the store the jobs see (to inject faults).
	wrapStore func(storage.Store) storage.Store
	// partitions is the engine's partition count. Default 4.
	partitions int
	// retention is purge-job-repository's REPOSITORY_RETENTION. Default 0.
	retention time.Duration
}

func setup(t *testing.T, o options) *bundle {
	t.Helper()
	db := testenv.NewDB(t)
	rd := testenv.NewRedis(t)
	opt, err := asynq.ParseRedisURI(rd.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if o.notifier == nil {
		o.notifier = notify.Log{Logger: log}
	}
	var jobStore storage.Store = store
	if o.wrapStore != nil {
		jobStore = o.wrapStore(store)
	}
	if o.partitions == 0 {
		o.partitions = 4
	}
	reg := tasks.Registry(tasks.Deps{DB: db.DB, Notifier: o.notifier, Store: jobStore, Logger: log, RepositoryRetention: o.retention})
	eng := batch.New(db.DB, client, reg, batch.Options{Logger: log, Partitions: batch.FixedPartitions(o.partitions)})
	w := eng.NewWorker(opt, batch.WorkerOptions{
		Concurrency: 8, Queues: batch.Queues(map[string]int{tasks.QueueSchedule: 6}), Logger: log,
		RetryDelay: func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond },
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TaskGrantBulkPass, tasks.GrantHandler(eng))
	if err := w.Start(context.Background(), mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	return &bundle{db: db, engine: eng, client: client, store: store}
}

func (b *bundle) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := b.db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// run launches job at the given run.at with extra key=value params and
// waits for it to end.
func (b *bundle) run(t *testing.T, job string, at time.Time, kv ...string) *batch.JobExecution {
	t.Helper()
	p, err := batch.ParseParams(append([]string{"run.at=" + at.Format(time.RFC3339)}, kv...))
	if err != nil {
		t.Fatal(err)
	}
	je, err := b.engine.Launch(context.Background(), job, p)
	if err != nil {
		t.Fatalf("launch %s: %v", job, err)
	}
	return b.wait(t, je.JobExecutionID)
}

func (b *bundle) wait(t *testing.T, id int64) *batch.JobExecution {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		je := new(batch.JobExecution)
		if err := b.db.NewSelect().Model(je).Where("job_execution_id = ?", id).Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !batch.Running(je.Status) {
			return je
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %d still %s", id, je.Status)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

func requireCompleted(t *testing.T, je *batch.JobExecution) {
	t.Helper()
	if je.Status != batch.StatusCompleted {
		t.Fatalf("execution %d: %s %s", je.JobExecutionID, je.Status, je.ExitMessage)
	}
}

// base inserts a package, a user and returns their ids.
func (b *bundle) base(t *testing.T) {
	t.Helper()
	b.exec(t, `INSERT INTO package (id, name, count, period_days) VALUES (1, 'PT 10', 10, 60), (2, '무제한', NULL, NULL);
		INSERT INTO users (id, name, email) VALUES (1, '김민지', 'a@x'), (2, '이서준', 'b@x'), (3, '박지호', 'c@x');`)
}

func scan[T any](t *testing.T, db bun.IDB, q string, args ...any) T {
	t.Helper()
	var v T
	if err := db.NewRaw(q, args...).Scan(context.Background(), &v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}
