package batch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/models"
)

// item is a row of the test table: n counts how often the job applied its
// effect, so a double application is visible as n = 2.
type item struct {
	ID  int64  `bun:"id"`
	N   int    `bun:"n"`
	Bad string `bun:"bad"`
}

type bundle struct {
	db     *testenv.DB
	redis  *testenv.Redis
	engine *batch.Engine
	client *asynq.Client
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// setup makes a fresh database with a test table of n rows, and an engine
// over reg (built by mkJobs once the table exists).
func setup(t *testing.T, rows int, jobs ...*batch.Job) *bundle {
	t.Helper()
	ctx := context.Background()
	db := testenv.NewDB(t)
	rd := testenv.NewRedis(t)
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0 CHECK (n <= 1), bad text NOT NULL DEFAULT '', done bool NOT NULL DEFAULT false)`); err != nil {
		t.Fatal(err)
	}
	if rows > 0 {
		if _, err := db.ExecContext(ctx, `INSERT INTO t (n) SELECT 0 FROM generate_series(1, ?)`, rows); err != nil {
			t.Fatal(err)
		}
	}
	opt, err := asynq.ParseRedisURI(rd.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	eng := batch.New(db.DB, client, batch.NewRegistry(jobs...), batch.Options{Logger: quietLogger()})
	return &bundle{db: db, redis: rd, engine: eng, client: client}
}

// startWorkers runs n asynq servers over the engine's handlers until the test ends.
func (b *bundle) startWorkers(t *testing.T, n, concurrency int) {
	t.Helper()
	opt, _ := asynq.ParseRedisURI(b.redis.URL)
	for i := 0; i < n; i++ {
		srv := asynq.NewServer(opt, asynq.Config{
			Concurrency: concurrency, Queues: batch.Queues(nil), Logger: nopLogger{}, LogLevel: asynq.FatalLevel,
			RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 200 * time.Millisecond },
		})
		mux := asynq.NewServeMux()
		b.engine.Register(mux)
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
	}
}

type nopLogger struct{}

func (nopLogger) Debug(...any) {}
func (nopLogger) Info(...any)  {}
func (nopLogger) Warn(...any)  {}
func (nopLogger) Error(...any) {}
func (nopLogger) Fatal(...any) {}

// wait polls until the execution is no longer running.
func (b *bundle) wait(t *testing.T, id int64, timeout time.Duration) *models.JobExecution {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		je := new(models.JobExecution)
		if err := b.db.NewSelect().Model(je).Where("job_execution_id = ?", id).Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !batch.Running(je.Status) {
			return je
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %d still %s after %s", id, je.Status, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// incJob declares a job whose one partitioned chunk step sets n = n + 1 on
// every row where done is false... over the test table.
func incJob(name string, partitions, chunk int, opts ...func(*batch.ChunkStep[item, item])) *batch.Job {
	cs := batch.ChunkStep[item, item]{
		Reader: batch.KeysetReader[item]{
			Column: "id",
			Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
				return q.TableExpr("t").Column("id", "n", "bad")
			},
			KeyOf: func(it item) int64 { return it.ID },
		},
		Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []item) error {
			ids := make([]int64, len(items))
			for i, it := range items {
				ids[i] = it.ID
			}
			_, err := tx.NewRaw("UPDATE t SET n = n + 1 WHERE id = ANY(?)", pgdialect.Array(ids)).Exec(ctx)
			return err
		},
		ChunkSize:   chunk,
		Partitioner: batch.KeyRangePartitioner("t", "id", partitions, nil),
	}
	for _, o := range opts {
		o(&cs)
	}
	return &batch.Job{Name: name, Flow: []batch.Node{batch.NewChunk("inc", cs)}}
}

func countN(t *testing.T, db bun.IDB) (ones, others int) {
	t.Helper()
	if err := db.NewRaw("SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t").Scan(context.Background(), &ones, &others); err != nil {
		t.Fatal(err)
	}
	return
}

func stepTotals(t *testing.T, db bun.IDB, jeID int64) (parent models.StepExecution, sum models.StepExecution, parts int) {
	t.Helper()
	ctx := context.Background()
	if err := db.NewSelect().Model(&parent).Where("job_execution_id = ? AND parent_step_execution_id IS NULL", jeID).Limit(1).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw(`SELECT coalesce(sum(read_count),0), coalesce(sum(write_count),0), coalesce(sum(filter_count),0),
		coalesce(sum(process_skip_count + write_skip_count + read_skip_count),0), count(*)
		FROM batch_step_execution WHERE parent_step_execution_id = ?`, parent.StepExecutionID).
		Scan(ctx, &sum.ReadCount, &sum.WriteCount, &sum.FilterCount, &sum.WriteSkipCount, &parts); err != nil {
		t.Fatal(err)
	}
	return
}

func TestPartitionedJobEveryItemOnce(t *testing.T) {
	t.Parallel()
	const rows = 100_000
	b := setup(t, rows, incJob("inc", 64, 500))
	b.startWorkers(t, 4, 4)
	ctx := context.Background()
	je, err := b.engine.Launch(ctx, "inc", batch.Params{"run": {Value: "1", Identifying: true}})
	if err != nil {
		t.Fatal(err)
	}
	got := b.wait(t, je.JobExecutionID, 3*time.Minute)
	if got.Status != batch.StatusCompleted {
		t.Fatalf("status %s: %s", got.Status, got.ExitMessage)
	}
	if ones, others := countN(t, b.db); ones != rows || others != 0 {
		t.Fatalf("n=1 on %d rows, other n on %d; want %d and 0", ones, others, rows)
	}
	parent, sum, parts := stepTotals(t, b.db, je.JobExecutionID)
	if parts != 64 {
		t.Fatalf("partitions = %d, want 64", parts)
	}
	if parent.ReadCount != rows || parent.WriteCount != rows || sum.ReadCount != rows || sum.WriteCount != rows {
		t.Fatalf("counts: parent read %d write %d, partitions read %d write %d; want %d", parent.ReadCount, parent.WriteCount, sum.ReadCount, sum.WriteCount, rows)
	}
	if parent.ReadCount != parent.WriteCount+parent.FilterCount+parent.ProcessSkipCount+parent.WriteSkipCount+parent.ReadSkipCount {
		t.Fatalf("read != write + filter + skips: %+v", parent)
	}
}

func TestLaunchRules(t *testing.T) {
	t.Parallel()
	b := setup(t, 100, incJob("inc", 4, 50))
	ctx := context.Background()
	p := batch.Params{"run": {Value: "1", Identifying: true}}

	// 10 concurrent launches of one instance: exactly one execution.
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = b.engine.Launch(ctx, "inc", p)
		}(i)
	}
	wg.Wait()
	ok, running := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, batch.ErrAlreadyRunning):
			running++
		default:
			t.Fatalf("unexpected launch error: %v", err)
		}
	}
	var execs int
	if err := b.db.NewRaw("SELECT count(*) FROM batch_job_execution").Scan(ctx, &execs); err != nil {
		t.Fatal(err)
	}
	if ok != 1 || running != 9 || execs != 1 {
		t.Fatalf("launches ok=%d already-running=%d executions=%d; want 1, 9, 1", ok, running, execs)
	}
	b.startWorkers(t, 1, 4)
	var id int64
	if err := b.db.NewRaw("SELECT job_execution_id FROM batch_job_execution").Scan(ctx, &id); err != nil {
		t.Fatal(err)
	}
	if got := b.wait(t, id, time.Minute); got.Status != batch.StatusCompleted {
		t.Fatalf("status %s: %s", got.Status, got.ExitMessage)
	}
	// A completed instance refuses to run again.
	if _, err := b.engine.Launch(ctx, "inc", p); !errors.Is(err, batch.ErrAlreadyComplete) {
		t.Fatalf("relaunch of completed instance: %v, want ErrAlreadyComplete", err)
	}
	// Unknown job.
	if _, err := b.engine.Launch(ctx, "nope", p); !errors.Is(err, batch.ErrUnknownJob) {
		t.Fatalf("unknown job: %v", err)
	}
	if ones, others := countN(t, b.db); ones != 100 || others != 0 {
		t.Fatalf("n=1 on %d, other %d", ones, others)
	}
	_ = fmt.Sprint()
}
