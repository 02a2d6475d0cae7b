package batch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
	"github.com/passbatch/passbatch/internal/testenv"
)

type bundle struct {
	db     *testenv.DB
	redis  *testenv.Redis
	engine *batch.Engine
	client *asynq.Client
}

func quietLogger() *slog.Logger {
	if os.Getenv("BATCH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// setup makes a fresh database with table t of rows rows, a Redis database
// and an engine over jobs.
func setup(t testing.TB, rows int, jobs ...*batch.Job) *bundle {
	t.Helper()
	ctx := context.Background()
	db := testenv.NewDB(t)
	rd := testenv.NewRedis(t)
	if err := testjob.CreateTable(ctx, db, rows); err != nil {
		t.Fatal(err)
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

// startWorkers runs n in-process workers over the engine until the test
// ends or stop is called.
func (b *bundle) startWorkers(t *testing.T, n, concurrency int) (stop func()) {
	t.Helper()
	opt, _ := asynq.ParseRedisURI(b.redis.URL)
	var ws []*batch.Worker
	for i := 0; i < n; i++ {
		w := b.engine.NewWorker(opt, batch.WorkerOptions{
			Concurrency: concurrency, Logger: quietLogger(), ShutdownTimeout: 5 * time.Second,
			RetryDelay: func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond },
		})
		if err := w.Start(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			for _, w := range ws {
				w.Stop(context.Background())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

type nopLogger struct{}

func (nopLogger) Debug(...any) {}
func (nopLogger) Info(...any)  {}
func (nopLogger) Warn(...any)  {}
func (nopLogger) Error(...any) {}
func (nopLogger) Fatal(...any) {}

func (b *bundle) execution(t testing.TB, id int64) *batch.JobExecution {
	t.Helper()
	je := new(batch.JobExecution)
	if err := b.db.NewSelect().Model(je).Where("job_execution_id = ?", id).Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	return je
}

// wait polls until the execution is no longer running.
func (b *bundle) wait(t testing.TB, id int64, timeout time.Duration) *batch.JobExecution {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		je := b.execution(t, id)
		if !batch.Running(je.Status) {
			return je
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %d still %s after %s", id, je.Status, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCommits polls until the execution's partitions have committed at least n chunks.
func (b *bundle) waitCommits(t *testing.T, id int64, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var c int
		if err := b.db.NewRaw("SELECT coalesce(sum(commit_count),0) FROM batch_step_execution WHERE job_execution_id = ? AND parent_step_execution_id IS NOT NULL", id).Scan(context.Background(), &c); err != nil {
			t.Fatal(err)
		}
		if c >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("execution %d committed fewer than %d chunks in a minute", id, n)
}

func (b *bundle) launch(t *testing.T, job string, kv ...string) int64 {
	t.Helper()
	p, err := batch.ParseParams(kv)
	if err != nil {
		t.Fatal(err)
	}
	je, err := b.engine.Launch(context.Background(), job, p)
	if err != nil {
		t.Fatal(err)
	}
	return je.JobExecutionID
}

func requireStatus(t *testing.T, je *batch.JobExecution, want string) {
	t.Helper()
	if je.Status != want {
		t.Fatalf("execution %d: status %s (%s), want %s", je.JobExecutionID, je.Status, je.ExitMessage, want)
	}
}

// countN returns how many rows of t have n = 1 and how many another n.
func countN(t *testing.T, db bun.IDB) (ones, others int) {
	t.Helper()
	if err := db.NewRaw("SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n <> 1) FROM t").Scan(context.Background(), &ones, &others); err != nil {
		t.Fatal(err)
	}
	return
}

func requireAllOnce(t *testing.T, db bun.IDB, rows int) {
	t.Helper()
	if ones, others := countN(t, db); ones != rows || others != 0 {
		t.Fatalf("n = 1 on %d rows and another n on %d; want %d and 0", ones, others, rows)
	}
}

// topStep returns the job execution's step execution named step.
func topStep(t *testing.T, db bun.IDB, jeID int64, step string) *batch.StepExecution {
	t.Helper()
	se := new(batch.StepExecution)
	if err := db.NewSelect().Model(se).Where("job_execution_id = ? AND step_name = ? AND parent_step_execution_id IS NULL", jeID, step).Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	return se
}

type sums struct{ read, write, filter, skip, parts int64 }

func partitionSums(t *testing.T, db bun.IDB, parentID int64) sums {
	t.Helper()
	var s sums
	if err := db.NewRaw(`SELECT coalesce(sum(read_count),0), coalesce(sum(write_count),0), coalesce(sum(filter_count),0),
		coalesce(sum(process_skip_count + write_skip_count + read_skip_count),0), count(*)
		FROM batch_step_execution WHERE parent_step_execution_id = ?`, parentID).
		Scan(context.Background(), &s.read, &s.write, &s.filter, &s.skip, &s.parts); err != nil {
		t.Fatal(err)
	}
	return s
}

func requireCountsAddUp(t *testing.T, se *batch.StepExecution) {
	t.Helper()
	if se.ReadCount != se.WriteCount+se.FilterCount+se.ReadSkipCount+se.ProcessSkipCount+se.WriteSkipCount {
		t.Fatalf("step %s: read %d != write %d + filter %d + skips %d/%d/%d", se.StepName, se.ReadCount, se.WriteCount,
			se.FilterCount, se.ReadSkipCount, se.ProcessSkipCount, se.WriteSkipCount)
	}
}

func TestPartitionedJobEveryItemOnce(t *testing.T) {
	t.Parallel()
	const rows = 100_000
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: 64, ChunkSize: 500}))
	b.startWorkers(t, 4, 4)
	id := b.launch(t, "inc", "run=1")
	requireStatus(t, b.wait(t, id, 3*time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	parent := topStep(t, b.db, id, "inc")
	s := partitionSums(t, b.db, parent.StepExecutionID)
	if s.parts != 64 {
		t.Fatalf("partitions = %d, want 64", s.parts)
	}
	if parent.ReadCount != rows || parent.WriteCount != rows || s.read != rows || s.write != rows {
		t.Fatalf("counts: parent read %d write %d, partitions read %d write %d; want %d", parent.ReadCount, parent.WriteCount, s.read, s.write, rows)
	}
	requireCountsAddUp(t, parent)
}

func TestLaunchRules(t *testing.T) {
	t.Parallel()
	b := setup(t, 100, testjob.IncJob("inc", testjob.Options{Partitions: 4, ChunkSize: 50}))
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
	var ids []int64
	if err := b.db.NewRaw("SELECT job_execution_id FROM batch_job_execution").Scan(ctx, &ids); err != nil {
		t.Fatal(err)
	}
	if ok != 1 || running != 9 || len(ids) != 1 {
		t.Fatalf("launches ok=%d already-running=%d executions=%d; want 1, 9, 1", ok, running, len(ids))
	}
	b.startWorkers(t, 1, 4)
	requireStatus(t, b.wait(t, ids[0], time.Minute), batch.StatusCompleted)
	if _, err := b.engine.Launch(ctx, "inc", p); !errors.Is(err, batch.ErrAlreadyComplete) {
		t.Fatalf("relaunch of a completed instance: %v, want ErrAlreadyComplete", err)
	}
	if _, err := b.engine.Restart(ctx, ids[0]); !errors.Is(err, batch.ErrInvalidTransition) {
		t.Fatalf("restart of a completed execution: %v, want ErrInvalidTransition", err)
	}
	if _, err := b.engine.Launch(ctx, "nope", p); !errors.Is(err, batch.ErrUnknownJob) {
		t.Fatalf("unknown job: %v, want ErrUnknownJob", err)
	}
	requireAllOnce(t, b.db, 100)
	// The database itself refuses a second running execution of an instance.
	_, err := b.db.ExecContext(ctx, `INSERT INTO batch_job_execution (job_instance_id, status) SELECT job_instance_id, 'STARTED' FROM batch_job_instance;
		INSERT INTO batch_job_execution (job_instance_id, status) SELECT job_instance_id, 'STARTING' FROM batch_job_instance`)
	if err == nil {
		t.Fatal("two running executions of one instance were accepted")
	}
}

// TestDuplicateDelivery delivers every partition task twice at once: the
// version fence lets one delivery commit each chunk.
func TestDuplicateDelivery(t *testing.T) {
	t.Parallel()
	const rows = 5_000
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: 5, ChunkSize: 50}))
	id := b.launch(t, "inc", "-sleep_ms=1")
	b.startWorkers(t, 2, 8)
	// Wait for the partitions to exist, then enqueue a second task for each.
	var parts []int64
	deadline := time.Now().Add(30 * time.Second)
	for len(parts) < 5 && time.Now().Before(deadline) {
		parts = nil
		if err := b.db.NewRaw("SELECT step_execution_id FROM batch_step_execution WHERE job_execution_id = ? AND parent_step_execution_id IS NOT NULL", id).Scan(context.Background(), &parts); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range parts {
		task := asynq.NewTask(batch.TaskPartition, []byte(fmt.Sprintf(`{"step_execution_id":%d}`, p)))
		if _, err := b.client.Enqueue(task, asynq.Queue(batch.QueuePartition), asynq.TaskID(fmt.Sprintf("dup:%d", p))); err != nil {
			t.Fatal(err)
		}
	}
	requireStatus(t, b.wait(t, id, 2*time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	parent := topStep(t, b.db, id, "inc")
	if parent.ReadCount != rows || parent.WriteCount != rows {
		t.Fatalf("parent read %d write %d, want %d (a duplicate counted twice?)", parent.ReadCount, parent.WriteCount, rows)
	}
}

func markBad(t *testing.T, db bun.IDB, kind string, ids ...int64) {
	t.Helper()
	for _, id := range ids {
		if _, err := db.ExecContext(context.Background(), "UPDATE t SET bad = ? WHERE id = ?", kind, id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSkip(t *testing.T) {
	t.Parallel()
	t.Run("WithinLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 1000, testjob.IncJob("inc", testjob.Options{Partitions: 2, ChunkSize: 100, Skip: batch.SkipPolicy{Limit: 10}}))
		markBad(t, b.db, "process", 10, 20, 30)
		markBad(t, b.db, "write", 40, 950)
		markBad(t, b.db, "filter", 60)
		b.startWorkers(t, 1, 4)
		id := b.launch(t, "inc")
		requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
		ones, others := countN(t, b.db)
		if ones != 994 || others != 6 {
			t.Fatalf("n=1 on %d, other on %d; want 994 and 6", ones, others)
		}
		var skipped []batch.SkipRecord
		if err := b.db.NewSelect().Model(&skipped).Order("item_key").Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, s := range skipped {
			got[s.ItemKey] = s.Phase
			if s.Error == "" {
				t.Fatalf("skipped item %s has no reason", s.ItemKey)
			}
		}
		want := map[string]string{"10": "process", "20": "process", "30": "process", "40": "write", "950": "write"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("skipped items %v, want %v", got, want)
		}
		parent := topStep(t, b.db, id, "inc")
		if parent.ProcessSkipCount != 3 || parent.WriteSkipCount != 2 || parent.FilterCount != 1 || parent.WriteCount != 994 || parent.ReadCount != 1000 {
			t.Fatalf("counts %+v", parent)
		}
		requireCountsAddUp(t, parent)
	})
	t.Run("PastLimitThenRestart", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 1000, testjob.IncJob("inc", testjob.Options{Partitions: 2, ChunkSize: 100, Skip: batch.SkipPolicy{Limit: 2}}))
		markBad(t, b.db, "process", 610, 620, 630)
		b.startWorkers(t, 1, 4)
		id := b.launch(t, "inc")
		failed := b.wait(t, id, time.Minute)
		requireStatus(t, failed, batch.StatusFailed)
		// Partition 1 (1..500) completed; partition 2 committed 501..600 and failed in 601..700.
		ones, _ := countN(t, b.db)
		if ones != 600 {
			t.Fatalf("after the failure n=1 on %d rows, want 600 (the chunks committed before the bad one)", ones)
		}
		markBad(t, b.db, "", 610, 620, 630)
		je2, err := b.engine.Restart(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		requireStatus(t, b.wait(t, je2.JobExecutionID, time.Minute), batch.StatusCompleted)
		requireAllOnce(t, b.db, 1000) // CHECK (n <= 1) would have failed a redone chunk
		parent := topStep(t, b.db, je2.JobExecutionID, "inc")
		if parent.ReadCount != 400 || parent.WriteCount != 400 {
			t.Fatalf("restart read %d wrote %d, want 400 each (only what was left)", parent.ReadCount, parent.WriteCount)
		}
	})
}

func TestRetry(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		limit      int
		wantStatus string
		wantCalls  int
	}{
		{name: "WithinLimit", limit: 3, wantStatus: batch.StatusCompleted, wantCalls: 3},
		{name: "PastLimit", limit: 1, wantStatus: batch.StatusFailed, wantCalls: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			calls := 0
			var times []time.Time
			proc := func(ctx context.Context, sc *batch.StepContext, it testjob.Item) (testjob.Item, error) {
				if it.ID != 7 {
					return it, nil
				}
				mu.Lock()
				defer mu.Unlock()
				calls++
				times = append(times, time.Now())
				if calls < 3 {
					return it, batch.Retryable(errors.New("transient"))
				}
				return it, nil
			}
			b := setup(t, 50, testjob.IncJob("inc", testjob.Options{Partitions: 1, ChunkSize: 10, Processor: proc,
				Retry: batch.RetryPolicy{Limit: tt.limit, Backoff: func(n int) time.Duration { return time.Duration(n) * 50 * time.Millisecond }}}))
			b.startWorkers(t, 1, 2)
			id := b.launch(t, "inc")
			requireStatus(t, b.wait(t, id, time.Minute), tt.wantStatus)
			mu.Lock()
			defer mu.Unlock()
			if calls != tt.wantCalls {
				t.Fatalf("processor called %d times for the transient item, want %d", calls, tt.wantCalls)
			}
			if gap := times[1].Sub(times[0]); gap < 50*time.Millisecond {
				t.Fatalf("retry after %s, want the 50ms backoff", gap)
			}
			if tt.wantStatus == batch.StatusCompleted {
				requireAllOnce(t, b.db, 50)
			} else if ones, _ := countN(t, b.db); ones != 0 {
				t.Fatalf("failed chunk left %d rows written", ones)
			}
		})
	}
}

func TestStopRestartAbandon(t *testing.T) {
	t.Parallel()
	const rows = 8_000
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: 4, ChunkSize: 50}))
	b.startWorkers(t, 1, 4)
	ctx := context.Background()
	id := b.launch(t, "inc", "-sleep_ms=1")
	b.waitCommits(t, id, 8)
	if err := b.engine.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusStopped)
	ones, others := countN(t, b.db)
	if ones == 0 || ones == rows || others != rows-ones {
		t.Fatalf("after stop n=1 on %d rows; want some but not all", ones)
	}
	// Checkpoints are kept: each stopped partition's context holds its last key.
	var withCheckpoint int
	if err := b.db.NewRaw(`SELECT count(*) FROM batch_step_execution s JOIN batch_step_execution_context c USING (step_execution_id)
		WHERE s.job_execution_id = ? AND s.parent_step_execution_id IS NOT NULL AND c.short_context LIKE '%batch.last_key%'`, id).Scan(ctx, &withCheckpoint); err != nil {
		t.Fatal(err)
	}
	if withCheckpoint == 0 {
		t.Fatal("no partition kept a checkpoint")
	}
	if err := b.engine.Stop(ctx, id); !errors.Is(err, batch.ErrInvalidTransition) {
		t.Fatalf("stop of a stopped execution: %v, want ErrInvalidTransition", err)
	}
	je2, err := b.engine.Restart(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, je2.JobExecutionID, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	if parent := topStep(t, b.db, je2.JobExecutionID, "inc"); parent.ReadCount != int64(rows-ones) {
		t.Fatalf("restart read %d, want the %d rows left", parent.ReadCount, rows-ones)
	}

	// Abandon: stop another instance, abandon it, and it can never run again.
	if _, err := b.db.ExecContext(ctx, "UPDATE t SET n = 0"); err != nil {
		t.Fatal(err)
	}
	id3 := b.launch(t, "inc", "run=2", "-sleep_ms=1")
	b.waitCommits(t, id3, 2)
	if err := b.engine.Abandon(ctx, id3); !errors.Is(err, batch.ErrInvalidTransition) {
		t.Fatalf("abandon of a running execution: %v, want ErrInvalidTransition", err)
	}
	if err := b.engine.Stop(ctx, id3); err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, id3, time.Minute), batch.StatusStopped)
	if err := b.engine.Abandon(ctx, id3); err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.execution(t, id3), batch.StatusAbandoned)
	if _, err := b.engine.Restart(ctx, id3); !errors.Is(err, batch.ErrAbandoned) {
		t.Fatalf("restart of an abandoned execution: %v, want ErrAbandoned", err)
	}
	if _, err := b.engine.Launch(ctx, "inc", batch.Params{"run": {Value: "2", Identifying: true}}); !errors.Is(err, batch.ErrAbandoned) {
		t.Fatalf("launch of an abandoned instance: %v, want ErrAbandoned", err)
	}
}

// TestRedisFlushedMidJob loses every task in Redis mid-job; the reconciler
// re-drives the execution from Postgres.
func TestRedisFlushedMidJob(t *testing.T) {
	t.Parallel()
	const rows = 10_000
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: 16, ChunkSize: 50}))
	b.startWorkers(t, 1, 2) // fewer slots than partitions: most tasks wait in Redis
	id := b.launch(t, "inc", "-sleep_ms=1")
	b.waitCommits(t, id, 5)
	if err := b.redis.Client.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.engine.RunReconciler(ctx, batch.ReconcileOptions{Every: 300 * time.Millisecond, StaleAfter: time.Second})
	requireStatus(t, b.wait(t, id, 2*time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	if parent := topStep(t, b.db, id, "inc"); parent.WriteCount != rows {
		t.Fatalf("parent wrote %d, want %d", parent.WriteCount, rows)
	}
}

func sleepTasklet(d time.Duration) batch.Tasklet {
	return func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
		time.Sleep(d)
		sc.Counts.Write = 1
		return batch.Finished, nil
	}
}

func TestSplitRunsBranchesConcurrently(t *testing.T) {
	t.Parallel()
	job := &batch.Job{Name: "split", Flow: []batch.Node{
		batch.NewTasklet("first", sleepTasklet(10*time.Millisecond)),
		&batch.Split{Flows: [][]*batch.Step{
			{batch.NewTasklet("left", sleepTasklet(700*time.Millisecond))},
			{testjob.IncStep("right", testjob.Options{Partitions: 2, ChunkSize: 20, Processor: func(ctx context.Context, sc *batch.StepContext, it testjob.Item) (testjob.Item, error) {
				time.Sleep(5 * time.Millisecond)
				return it, nil
			}})},
		}},
		batch.NewTasklet("last", sleepTasklet(10*time.Millisecond)),
	}}
	b := setup(t, 100, job)
	b.startWorkers(t, 2, 4)
	id := b.launch(t, "split")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	left, right, last := topStep(t, b.db, id, "left"), topStep(t, b.db, id, "right"), topStep(t, b.db, id, "last")
	if !(left.StartTime.Before(*right.EndTime) && right.StartTime.Before(*left.EndTime)) {
		t.Fatalf("branches did not overlap: left %s–%s, right %s–%s", left.StartTime, left.EndTime, right.StartTime, right.EndTime)
	}
	if last.StartTime.Before(*left.EndTime) || last.StartTime.Before(*right.EndTime) {
		t.Fatalf("last started %s before both branches ended (%s, %s)", last.StartTime, left.EndTime, right.EndTime)
	}
	requireAllOnce(t, b.db, 100)
}

func TestListenersOncePerExecution(t *testing.T) {
	t.Parallel()
	record := func(what string) func(ctx context.Context, tx bun.Tx) error {
		return func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO calls (what) VALUES (?)", what)
			return err
		}
	}
	step := testjob.IncStep("inc", testjob.Options{Partitions: 4, ChunkSize: 10}).WithListeners(batch.StepListener{
		BeforeStep: func(ctx context.Context, tx bun.Tx, se *batch.StepExecution, p batch.Params) error {
			return record("before-step")(ctx, tx)
		},
		AfterStep: func(ctx context.Context, tx bun.Tx, se *batch.StepExecution, p batch.Params) error {
			return record("after-step")(ctx, tx)
		},
	})
	job := &batch.Job{Name: "listen", Flow: []batch.Node{step}, Listeners: []batch.JobListener{{
		BeforeJob: func(ctx context.Context, tx bun.Tx, je *batch.JobExecution, p batch.Params) error {
			return record("before-job")(ctx, tx)
		},
		AfterJob: func(ctx context.Context, tx bun.Tx, je *batch.JobExecution, p batch.Params) error {
			return record("after-job")(ctx, tx)
		},
	}}}
	b := setup(t, 200, job)
	if _, err := b.db.ExecContext(context.Background(), "CREATE TABLE calls (what text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	id := b.launch(t, "listen")
	// Every control task of the execution is delivered several more times,
	// under other task IDs, while it runs and after it ended.
	dup := func(round int) {
		var ses []int64
		_ = b.db.NewRaw("SELECT step_execution_id FROM batch_step_execution WHERE job_execution_id = ?", id).Scan(context.Background(), &ses)
		for _, se := range ses {
			payload := []byte(fmt.Sprintf(`{"step_execution_id":%d}`, se))
			_, _ = b.client.Enqueue(asynq.NewTask(batch.TaskStepDone, payload), asynq.Queue(batch.QueueControl), asynq.TaskID(fmt.Sprintf("dup-done:%d:%d", round, se)))
		}
		_, _ = b.client.Enqueue(asynq.NewTask(batch.TaskJob, []byte(fmt.Sprintf(`{"job_execution_id":%d}`, id))), asynq.Queue(batch.QueueControl), asynq.TaskID(fmt.Sprintf("dup-job:%d", round)))
		_, _ = b.client.Enqueue(asynq.NewTask(batch.TaskStep, []byte(fmt.Sprintf(`{"job_execution_id":%d,"step":"inc"}`, id))), asynq.Queue(batch.QueueControl), asynq.TaskID(fmt.Sprintf("dup-step:%d", round)))
	}
	dup(0)
	b.startWorkers(t, 2, 4)
	for i := 1; i <= 5; i++ {
		dup(i)
		time.Sleep(20 * time.Millisecond)
	}
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	dup(6)
	time.Sleep(500 * time.Millisecond)
	var rows []struct {
		What string `bun:"what"`
		N    int    `bun:"n"`
	}
	if err := b.db.NewRaw("SELECT what, count(*) AS n FROM calls GROUP BY what ORDER BY what").Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rows); got != "[{after-job 1} {after-step 1} {before-job 1} {before-step 1}]" {
		t.Fatalf("listener calls %s, want each once", got)
	}
	requireAllOnce(t, b.db, 200)
}

// TestWriterChangingFilterColumn: the reader selects flag = false and the
// writer sets flag = true. Keyset paging still visits every row; OFFSET
// paging would skip half of them.
func TestWriterChangingFilterColumn(t *testing.T) {
	t.Parallel()
	const rows = 10_000
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: 1, ChunkSize: 100, Where: "flag = false", SetFlag: true}))
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "inc")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	if parent := topStep(t, b.db, id, "inc"); parent.ReadCount != rows {
		t.Fatalf("read %d, want %d", parent.ReadCount, rows)
	}
}

// netTimeout is an outside service's timeout as its client package reports
// it: a net.Error underneath, classified by its origin as retryable.
type netTimeout struct{}

func (netTimeout) Error() string   { return "i/o timeout" }
func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return true }

type classified struct{ err error }

func (c classified) Error() string   { return "webhook: " + c.err.Error() }
func (c classified) Unwrap() error   { return c.err }
func (c classified) Retryable() bool { return true }

// TestClassifiedErrorsFollowTheStepPolicy: a webhook timeout (a net.Error
// under an error its origin classified) gets the step's RetryPolicy — in
// place, then FAILED — instead of being taken for an infrastructure fault
// and retried by asynq until its task is archived.
func TestClassifiedErrorsFollowTheStepPolicy(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	proc := func(ctx context.Context, sc *batch.StepContext, it testjob.Item) (testjob.Item, error) {
		if it.ID == 7 {
			calls.Add(1)
			return it, classified{&net.OpError{Op: "dial", Net: "tcp", Err: netTimeout{}}}
		}
		return it, nil
	}
	b := setup(t, 50, testjob.IncJob("inc", testjob.Options{Partitions: 1, ChunkSize: 10, Processor: proc,
		Retry: batch.RetryPolicy{Limit: 2, Backoff: func(int) time.Duration { return 10 * time.Millisecond }}}))
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "inc")
	je := b.wait(t, id, 20*time.Second)
	requireStatus(t, je, batch.StatusFailed)
	if n := calls.Load(); n != 3 {
		t.Fatalf("the timing-out item was tried %d times, want 3 (the first and the policy's 2 retries)", n)
	}
	if !strings.Contains(je.ExitMessage, "i/o timeout") {
		t.Fatalf("exit message %q does not give the reason", je.ExitMessage)
	}
}

// TestRetryBackoffHoldsNoLock: a write that the RetryPolicy retries rolls
// its chunk transaction back before waiting: during the backoff no
// transaction is open (one would be idle, and killed by the idle timeout)
// and no row of the chunk (the domain's, the step execution's) is locked.
func TestRetryBackoffHoldsNoLock(t *testing.T) {
	t.Parallel()
	var failed atomic.Bool
	waiting := make(chan struct{})
	job := &batch.Job{Name: "hold", Flow: []batch.Node{batch.NewChunk("inc", batch.ChunkStep[testjob.Item, testjob.Item]{
		Reader: batch.KeysetReader[testjob.Item]{Column: "id",
			Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
				return q.TableExpr("t").Column("id", "n", "bad")
			},
			KeyOf: func(it testjob.Item) int64 { return it.ID }},
		Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []testjob.Item) error {
			if _, err := tx.ExecContext(ctx, "UPDATE hot SET n = n + ? WHERE id = 1", len(items)); err != nil {
				return err
			}
			if failed.CompareAndSwap(false, true) {
				close(waiting)
				return batch.Retryable(errors.New("transient"))
			}
			return nil
		},
		ChunkSize: 100,
		Retry:     batch.RetryPolicy{Limit: 1, Backoff: func(int) time.Duration { return 2 * time.Second }},
	})}}
	b := setup(t, 50, job)
	b.startWorkers(t, 1, 1)
	id := b.launch(t, "hold")
	<-waiting
	time.Sleep(300 * time.Millisecond) // well into the backoff
	var idle int
	if err := b.db.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND state LIKE 'idle in transaction%'`).Scan(context.Background(), &idle); err != nil {
		t.Fatal(err)
	}
	err := b.db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT n FROM hot WHERE id = 1 FOR UPDATE NOWAIT"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "SELECT 1 FROM batch_step_execution WHERE job_execution_id = ? FOR UPDATE NOWAIT", id)
		return err
	})
	if idle != 0 || err != nil {
		t.Fatalf("during the retry backoff %d transactions stay open and a row lock is held: %v", idle, err)
	}
	requireStatus(t, b.wait(t, id, 20*time.Second), batch.StatusCompleted)
	requireHotOnce(t, b, 50)
}
