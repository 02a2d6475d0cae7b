package batch_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
)

// The liveness tests: a step whose phase outside any transaction takes much
// longer than the reconciler's stale threshold is alive while its worker
// beats, and is failed over within seconds when its worker dies.

// calls returns how many times step was called for each key, by key.
func (b *bundle) calls(t *testing.T, step string) map[int64]int {
	t.Helper()
	var rows []struct {
		Key int64 `bun:"key"`
		N   int   `bun:"n"`
	}
	if err := b.db.NewRaw("SELECT key, count(*) AS n FROM step_calls WHERE step = ? GROUP BY key", step).Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	out := map[int64]int{}
	for _, r := range rows {
		out[r.Key] = r.N
	}
	return out
}

// TestLongPhaseOnLiveWorkerRunsOnce: an IOTasklet call and a chunk's
// process phase that each run three times the stale threshold on a live
// worker run exactly once: the reconciler must not re-drive work whose
// holder beats.
func TestLongPhaseOnLiveWorkerRunsOnce(t *testing.T) {
	t.Parallel()
	const stale = 3 * time.Second
	t.Run("Tasklet", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 0, testjob.SlowCallJob("slow-call"))
		b.startWorkers(t, 2, 2)
		b.runReconcilerEvery(t, 300*time.Millisecond, stale)
		id := b.launch(t, "slow-call", "-sleep_ms=9000")
		requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
		if got := b.calls(t, "call")[0]; got != 1 {
			t.Fatalf("the 9 s call ran %d times on a live worker (stale after %s), want once", got, stale)
		}
	})
	t.Run("Chunk", func(t *testing.T) {
		t.Parallel()
		const rows = 10
		b := setup(t, rows)
		b.engine.Registry().Add(testjob.SlowProcessJob("slow-process", 5, b.db))
		b.startWorkers(t, 2, 2)
		b.runReconcilerEvery(t, 300*time.Millisecond, stale)
		id := b.launch(t, "slow-process", "-item_ms=1800") // a chunk of 5 takes 9 s
		requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
		requireAllOnce(t, b.db, rows)
		for key, n := range b.calls(t, "process") {
			if n != 1 {
				t.Fatalf("item %d was processed %d times on a live worker, want once", key, n)
			}
		}
	})
}

// TestWorkerDyingInALongPhaseFailsOver: a worker process SIGKILLed in the
// middle of a long call is failed over within FAILOVER_AFTER (3 s here, a
// few seconds more for the reconciler's tick and the next worker's poll),
// however long the call would have taken, and the job completes.
func TestWorkerDyingInALongPhaseFailsOver(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-process test")
	}
	b := setup(t, 0, testjob.SlowCallJob("slow-call"))
	b.runReconciler(t)
	victim := b.startProc(t, "long-victim", "WORKER_CONCURRENCY=1")
	id := b.launch(t, "slow-call", "-sleep_ms=600000") // ten minutes, on the first call only
	deadline := time.Now().Add(30 * time.Second)
	for b.calls(t, "call")[0] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the call never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.startProc(t, "long-heir", "WORKER_CONCURRENCY=1")
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for b.calls(t, "call")[0] < 2 {
		if time.Since(killed) > time.Minute {
			t.Fatal("the call was not failed over within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("SIGKILL in a 10-minute call: called again on another worker %s later", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("failover took %s, want within FAILOVER_AFTER (3s) plus a tick: under 10s", took)
	}
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
}

// TestPoisonWorkEnds: a chunk that fails with a statement timeout every
// time (an infrastructure error) is retried by asynq, archived, re-driven
// REDRIVE_LIMIT times, then its step ends FAILED with the last error and
// the job FAILED; once the cause is removed a restart resumes from the
// checkpoint and applies every row once.
func TestPoisonWorkEnds(t *testing.T) {
	t.Parallel()
	const rows = 400
	job := testjob.IncJob("inc", testjob.Options{Partitions: 2, ChunkSize: 50})
	b := setup(t, rows, job)
	b.engine = batch.New(b.db.DB, b.client, batch.NewRegistry(job), batch.Options{Logger: quietLogger(), MaxRetry: 2})
	ctx := context.Background()
	if _, err := b.db.ExecContext(ctx, "UPDATE t SET bad = 'timeout' WHERE id = 120"); err != nil {
		t.Fatal(err)
	}
	b.startWorkers(t, 1, 4)
	b.runReconcilerEvery(t, 200*time.Millisecond, time.Second)
	id := b.launch(t, "inc")
	je := b.wait(t, id, 2*time.Minute)
	requireStatus(t, je, batch.StatusFailed)
	var p batch.StepExecution
	if err := b.db.NewSelect().Model(&p).Where("job_execution_id = ? AND status = 'FAILED' AND parent_step_execution_id IS NOT NULL", id).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.ExitMessage, batch.RedriveLimitMessage) || !strings.Contains(p.ExitMessage, "statement timeout") || p.RedriveCount != batch.DefaultRedriveLimit+1 {
		t.Fatalf("partition %s: re-driven %d times, exit message %q; want the limit and the last error", p.StepName, p.RedriveCount, p.ExitMessage)
	}
	if !strings.Contains(je.ExitMessage, batch.RedriveLimitMessage) {
		t.Fatalf("job exit message %q does not say why", je.ExitMessage)
	}
	if ones, _ := countN(t, b.db); ones != rows-100 {
		t.Fatalf("%d rows applied, want every row but the poisoned chunk's partition after its checkpoint (%d)", ones, rows-100)
	}
	if _, err := b.db.ExecContext(ctx, "UPDATE t SET bad = '' WHERE id = 120"); err != nil {
		t.Fatal(err)
	}
	next, err := b.engine.Restart(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, next.JobExecutionID, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
}

// TestTwoSchedulersRedriveOnce: two schedulers reconciling the same stale
// execution at the same moment re-drive each lost partition once (one new
// generation, one counted re-drive), not once each.
func TestTwoSchedulersRedriveOnce(t *testing.T) {
	t.Parallel()
	const rows = 2_000
	job := testjob.IncJob("inc", testjob.Options{Partitions: 8, ChunkSize: 50})
	b := setup(t, rows, job)
	stop := b.startWorkers(t, 1, 1)
	id := b.launch(t, "inc", "-sleep_ms=2")
	b.waitCommits(t, id, 2)
	stop()
	if err := b.redis.Client.FlushDB(context.Background()).Err(); err != nil { // every task is lost
		t.Fatal(err)
	}
	ctx := context.Background()
	type gens map[int64]int
	read := func() gens {
		var rows []struct {
			ID  int64 `bun:"step_execution_id"`
			Gen int   `bun:"generation"`
		}
		// The partitions whose turn had come (the rest wait theirs, not lost).
		if err := b.db.NewRaw(`SELECT step_execution_id, generation FROM batch_step_execution
			WHERE job_execution_id = ? AND parent_step_execution_id IS NOT NULL AND status IN ('STARTING', 'STARTED')
			AND queued_at IS NOT NULL`, id).Scan(ctx, &rows); err != nil {
			t.Fatal(err)
		}
		g := gens{}
		for _, r := range rows {
			g[r.ID] = r.Gen
		}
		return g
	}
	before := read()
	if len(before) == 0 {
		t.Fatal("no unfinished partition to re-drive")
	}
	time.Sleep(1200 * time.Millisecond) // past StaleAfter
	opt, _ := asynq.ParseRedisURI(b.redis.URL)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 2; i++ {
		sched := batch.New(b.db.DB, b.client, batch.NewRegistry(job), batch.Options{Logger: quietLogger()})
		insp := asynq.NewInspector(opt)
		defer insp.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := sched.Reconcile(ctx, batch.ReconcileOptions{StaleAfter: time.Second, Inspector: insp}); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	after := read()
	for se, g := range before {
		if after[se] != g+1 {
			t.Errorf("partition %d: generation %d → %d, want one re-drive", se, g, after[se])
		}
	}
	var counted int
	if err := b.db.NewRaw("SELECT coalesce(sum(redrive_count), 0) FROM batch_step_execution WHERE job_execution_id = ?", id).Scan(ctx, &counted); err != nil {
		t.Fatal(err)
	}
	if counted != len(before) {
		t.Errorf("%d re-drives counted for %d lost partitions", counted, len(before))
	}
	b.startWorkers(t, 2, 4)
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
}

// TestQueuedWorkIsNotRedriven: partitions that wait in the queue longer
// than the stale threshold, behind one slot busy with long chunks (so no
// row of the execution moves for longer than the threshold), are not
// re-driven: their tasks are in Redis, so they keep their place.
func TestQueuedWorkIsNotRedriven(t *testing.T) {
	t.Parallel()
	const rows = 200
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: 4, ChunkSize: 50}))
	b.startWorkers(t, 1, 1)
	b.runReconcilerEvery(t, 200*time.Millisecond, time.Second)
	id := b.launch(t, "inc", "-sleep_ms=30") // a chunk, and a partition, takes 1.5 s
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	var redriven, counted int
	if err := b.db.NewRaw(`SELECT count(*) FILTER (WHERE generation > 0), coalesce(sum(redrive_count), 0) FROM batch_step_execution
		WHERE job_execution_id = ?`, id).Scan(context.Background(), &redriven, &counted); err != nil {
		t.Fatal(err)
	}
	if redriven != 0 || counted != 0 {
		t.Fatalf("%d queued partitions were re-driven (%d counted) while their tasks waited in Redis", redriven, counted)
	}
}
