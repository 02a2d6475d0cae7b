package batch_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
