package batch_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
	"github.com/passbatch/passbatch/internal/database"
)

// The fleet tests run real worker processes (batch/internal/testjob/testworker)
// and hurt them: SIGKILL, SIGTERM, SIGSTOP, lost tasks.

var (
	workerBinOnce sync.Once
	workerBin     string
	workerBinErr  error
)

// testworkerBin builds the test worker binary once per test process.
func testworkerBin(t *testing.T) string {
	t.Helper()
	workerBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "passbatch-testworker-")
		if err != nil {
			workerBinErr = err
			return
		}
		workerBin = filepath.Join(dir, "testworker")
		if out, err := exec.Command("go", "build", "-race", "-o", workerBin, "./internal/testjob/testworker").CombinedOutput(); err != nil {
			workerBinErr = fmt.Errorf("build testworker: %v\n%s", err, out)
		}
	})
	if workerBinErr != nil {
		t.Fatal(workerBinErr)
	}
	return workerBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if workerBin != "" {
		os.RemoveAll(filepath.Dir(workerBin))
	}
	os.Exit(code)
}

// workerProc is a running test worker process.
type workerProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the exit, once done is closed
}

// startProc starts a test worker process named name (its Postgres
// application_name) with env added to the test's database and Redis.
func (b *bundle) startProc(t *testing.T, name string, env ...string) *workerProc {
	t.Helper()
	dsn := b.db.URL
	if strings.Contains(dsn, "?") {
		dsn += "&application_name=" + name
	} else {
		dsn += "?application_name=" + name
	}
	cmd := exec.Command(testworkerBin(t))
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+dsn, "REDIS_URL="+b.redis.URL, "WORKER_ID="+name), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &workerProc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// runReconciler runs the engine's reconciler, as the scheduler does, with
// settings short enough for tests, until the test ends.
func (b *bundle) runReconciler(t *testing.T) {
	t.Helper()
	b.runReconcilerEvery(t, 500*time.Millisecond, 3*time.Second)
}

// runReconcilerEvery runs the reconciler every tick with stale as its
// StaleAfter, 3 s as its FailoverAfter and an Inspector of the test's
// Redis, as the scheduler does, until the test ends.
func (b *bundle) runReconcilerEvery(t *testing.T, tick, stale time.Duration) {
	t.Helper()
	opt, err := asynq.ParseRedisURI(b.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.engine.RunReconciler(ctx, batch.ReconcileOptions{Every: tick, StaleAfter: stale, FailoverAfter: 3 * time.Second, Inspector: insp})
	}()
	t.Cleanup(func() { cancel(); <-done; insp.Close() })
}

// partitionCommits returns commit_count by partition step execution id for
// the partitions of execution jeID that are running and have committed.
func (b *bundle) runningPartitions(t *testing.T, jeID int64) map[int64]int64 {
	t.Helper()
	var rows []struct {
		ID      int64 `bun:"step_execution_id"`
		Commits int64 `bun:"commit_count"`
	}
	if err := b.db.NewRaw(`SELECT step_execution_id, commit_count FROM batch_step_execution
		WHERE job_execution_id = ? AND parent_step_execution_id IS NOT NULL AND status = 'STARTED' AND commit_count > 0`, jeID).
		Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	out := map[int64]int64{}
	for _, r := range rows {
		out[r.ID] = r.Commits
	}
	return out
}

// heldBy returns commit_count by step execution id of the running
// partitions claimed by the worker process p.
func (b *bundle) heldBy(t *testing.T, jeID int64, p *workerProc) map[int64]int64 {
	t.Helper()
	var rows []struct {
		ID      int64 `bun:"step_execution_id"`
		Commits int64 `bun:"commit_count"`
	}
	if err := b.db.NewRaw(`SELECT step_execution_id, commit_count FROM batch_step_execution
		WHERE job_execution_id = ? AND parent_step_execution_id IS NOT NULL AND status = 'STARTED' AND worker_id = ?`,
		jeID, p.name).Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	out := map[int64]int64{}
	for _, r := range rows {
		out[r.ID] = r.Commits
	}
	return out
}

// waitMoved polls until every partition in held has committed another chunk
// or finished, and returns how long that took.
func (b *bundle) waitMoved(t *testing.T, held map[int64]int64, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		stuck := 0
		for id, commits := range held {
			var status string
			var now int64
			if err := b.db.NewRaw("SELECT status, commit_count FROM batch_step_execution WHERE step_execution_id = ?", id).
				Scan(context.Background(), &status, &now); err != nil {
				t.Fatal(err)
			}
			if batch.Running(status) && now <= commits {
				stuck++
			}
		}
		if stuck == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%d of %d partitions held by the lost worker did not move within %s", stuck, len(held), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHotMoves returns how long it took until some chunk updated the hot row.
func (b *bundle) waitHotMoves(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var n0, n int64
	_ = b.db.NewRaw("SELECT n FROM hot WHERE id = 1").Scan(context.Background(), &n0)
	for {
		if err := b.db.NewRaw("SELECT n FROM hot WHERE id = 1").Scan(context.Background(), &n); err != nil {
			t.Fatal(err)
		}
		if n != n0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("no chunk got the hot row within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireHotOnce checks that every row was counted once in the hot row too.
func requireHotOnce(t *testing.T, b *bundle, rows int) {
	t.Helper()
	var n int64
	if err := b.db.NewRaw("SELECT n FROM hot WHERE id = 1").Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	if n != int64(rows) {
		t.Fatalf("hot.n = %d, want %d (a chunk applied twice or lost)", n, rows)
	}
}

// TestKilledWorkerFailsOverFast SIGKILLs a worker process holding four
// partitions mid-way: they must move again within 15 s, not after asynq's
// 30 s lease and its recoverer's tick.
func TestKilledWorkerFailsOverFast(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-process test")
	}
	const rows = 20_000
	b := setup(t, rows, testjob.Jobs()...)
	b.runReconciler(t)
	victim := b.startProc(t, "victim", "WORKER_CONCURRENCY=4")
	id := b.launch(t, "inc", "-sleep_ms=1")
	b.waitCommits(t, id, 12)
	b.startProc(t, "w2", "WORKER_CONCURRENCY=4")
	b.startProc(t, "w3", "WORKER_CONCURRENCY=4")
	time.Sleep(time.Second) // the survivors are up
	held := b.heldBy(t, id, victim)
	if len(held) == 0 {
		t.Fatal("the victim held no partition mid-way")
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	moved := b.waitMoved(t, held, 3*time.Minute)
	t.Logf("SIGKILL: %d partitions held by the killed worker moved again %s later", len(held), moved.Round(time.Millisecond))
	if moved > 15*time.Second {
		t.Errorf("the killed worker's partitions moved again after %s, want within 15s", moved.Round(time.Millisecond))
	}
	requireStatus(t, b.wait(t, id, 3*time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
}

// TestWorkerDrainsOnSIGTERM stops a worker process mid-partition with
// SIGTERM: it must hand its partitions back at the next chunk boundary and
// exit 0 within seconds, not keep running them until a shutdown timeout;
// the others take them over at once.
func TestWorkerDrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-process test")
	}
	const rows = 40_000 // 8 partitions of 5000 rows at 2 ms a row: far longer than the drain
	b := setup(t, rows, testjob.Jobs()...)
	b.runReconciler(t)
	victim := b.startProc(t, "victim", "WORKER_CONCURRENCY=4")
	id := b.launch(t, "inc", "-sleep_ms=2")
	b.waitCommits(t, id, 8)
	b.startProc(t, "w2", "WORKER_CONCURRENCY=8") // room for every partition
	time.Sleep(time.Second)
	signalled := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-victim.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not exit within 30s of SIGTERM")
	}
	exited := time.Since(signalled)
	if victim.err != nil {
		t.Errorf("the drained worker exited with %v, want status 0", victim.err)
	}
	// Every commit from now on is another worker's.
	held := b.runningPartitions(t, id)
	moved := b.waitMoved(t, held, time.Minute)
	t.Logf("SIGTERM: exited after %s; the %d running partitions moved again %s after that",
		exited.Round(time.Millisecond), len(held), moved.Round(time.Millisecond))
	if exited > 3*time.Second {
		t.Errorf("the worker exited %s after SIGTERM, want within 3s (its partitions handed back at the next chunk)", exited.Round(time.Millisecond))
	}
	if moved > 3*time.Second {
		t.Errorf("its partitions moved again %s after it exited, want within 3s", moved.Round(time.Millisecond))
	}
	requireStatus(t, b.wait(t, id, 2*time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
}

// TestFrozenWorkerDoesNotStallTheFleet freezes (SIGSTOP) a worker while its
// chunk transaction holds the lock every partition needs. The others must
// finish the job without it; thawed afterwards, it changes nothing.
func TestFrozenWorkerDoesNotStallTheFleet(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-process test")
	}
	const rows = 6_000 // 120 chunks of 50 serialized on the hot row, 100 ms each
	b := setup(t, rows, testjob.Jobs()...)
	b.runReconciler(t)
	victim := b.startProc(t, "frozen", "WORKER_CONCURRENCY=2")
	id := b.launch(t, "inc-hot", "-hold_ms=100")
	b.waitCommits(t, id, 2) // the victim holds two partitions
	b.startProc(t, "w2", "WORKER_CONCURRENCY=4")
	b.startProc(t, "w3", "WORKER_CONCURRENCY=4")
	ctx := context.Background()
	frozen := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !frozen; {
		// Freeze it while its transaction has updated the hot row and waits.
		var holding int
		_ = b.db.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'frozen'
			AND state = 'idle in transaction' AND query LIKE 'UPDATE hot%'`).Scan(ctx, &holding)
		if holding == 0 {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		_ = victim.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(50 * time.Millisecond)
		_ = b.db.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'frozen'
			AND state = 'idle in transaction' AND query LIKE 'UPDATE hot%'`).Scan(ctx, &holding)
		if holding > 0 {
			frozen = true
			break
		}
		_ = victim.cmd.Process.Signal(syscall.SIGCONT) // froze outside the window; again
	}
	if !frozen {
		var rows []struct {
			App   string `bun:"application_name"`
			State string `bun:"state"`
			Query string `bun:"query"`
		}
		_ = b.db.NewRaw("SELECT application_name, state, left(query, 60) AS query FROM pg_stat_activity WHERE datname = current_database()").Scan(ctx, &rows)
		t.Fatalf("could not freeze the worker while it held the hot row; sessions: %+v", rows)
	}
	frozenAt := time.Now()
	held := b.heldBy(t, id, victim)
	resumed := b.waitHotMoves(t, 60*time.Second)
	moved := b.waitMoved(t, held, time.Minute)
	je := b.wait(t, id, 90*time.Second)
	t.Logf("SIGSTOP: the others resumed %s after a worker froze holding the shared lock; its %d partitions moved again after %s; the job ended after %s",
		resumed.Round(time.Millisecond), len(held), moved.Round(time.Millisecond), time.Since(frozenAt).Round(time.Millisecond))
	if resumed > 15*time.Second || moved > 15*time.Second {
		t.Errorf("a frozen worker stalled the others for %s and its own partitions for %s, want each within 15s", resumed, moved)
	}
	requireStatus(t, je, batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	requireHotOnce(t, b, rows)
	// The zombie wakes up: it must find its ownership gone and change nothing.
	if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	requireAllOnce(t, b.db, rows)
	requireHotOnce(t, b, rows)
	parent := topStep(t, b.db, id, "inc")
	if parent.ReadCount != rows || parent.WriteCount != rows {
		t.Fatalf("parent read %d write %d after the zombie woke, want %d", parent.ReadCount, parent.WriteCount, rows)
	}
}

// TestArchivedTasksAreRedriven archives every task of a running execution
// (as 25 failed retries during a long outage, or a SkipRetry, would): the
// reconciler must drive it to COMPLETED without a human.
func TestArchivedTasksAreRedriven(t *testing.T) {
	t.Parallel()
	const rows = 4_000
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: 8, ChunkSize: 50}))
	stop := b.startWorkers(t, 1, 2)
	id := b.launch(t, "inc", "-sleep_ms=1")
	b.waitCommits(t, id, 3)
	stop() // active tasks go back to pending
	opt, _ := asynq.ParseRedisURI(b.redis.URL)
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	archived := 0
	for _, q := range []string{batch.QueueControl, batch.QueuePartition} {
		for _, archive := range []func(string) (int, error){insp.ArchiveAllPendingTasks, insp.ArchiveAllRetryTasks, insp.ArchiveAllScheduledTasks} {
			n, err := archive(q)
			if err != nil && !strings.Contains(err.Error(), "not found") {
				t.Fatal(err)
			}
			archived += n
		}
	}
	if archived == 0 {
		t.Fatal("nothing was archived")
	}
	b.startWorkers(t, 2, 4)
	b.runReconciler(t)
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
}

// TestReconcilerFailsAJobNobodyKnows: a task for a job no worker knows (a
// job removed in a deploy) is retried by asynq, not archived at once; the
// reconciler, whose registry does not know it either, ends the execution
// FAILED with the reason, so it never sits STARTED without a task.
func TestReconcilerFailsAJobNobodyKnows(t *testing.T) {
	t.Parallel()
	b := setup(t, 10, testjob.IncJob("gone", testjob.Options{}))
	id := b.launch(t, "gone")
	// The fleet runs a version without the job.
	fleet := batch.New(b.db.DB, b.client, batch.NewRegistry(testjob.IncJob("inc", testjob.Options{})), batch.Options{Logger: quietLogger()})
	opt, _ := asynq.ParseRedisURI(b.redis.URL)
	w := fleet.NewWorker(opt, batch.WorkerOptions{Concurrency: 2, Logger: quietLogger(),
		RetryDelay: func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond }})
	if err := w.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go fleet.RunReconciler(ctx, batch.ReconcileOptions{Every: 200 * time.Millisecond, StaleAfter: time.Second})
	je := b.wait(t, id, 30*time.Second)
	requireStatus(t, je, batch.StatusFailed)
	if !strings.Contains(je.ExitMessage, "unknown job") {
		t.Fatalf("exit message %q does not say the job is unknown", je.ExitMessage)
	}
}

// TestFailoverEndsOnlyTheDeadWorkersSessions: the reconciler ends the
// database sessions of a worker whose heartbeat stopped (releasing a frozen
// worker's locks) and no other session: not a live worker's, not its own.
func TestFailoverEndsOnlyTheDeadWorkersSessions(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	ctx := context.Background()
	if _, err := b.db.ExecContext(ctx, `INSERT INTO batch_worker (worker_id, hostname, pid, concurrency, state, heartbeat_at)
		VALUES ('dead', 'h', 1, 1, 'RUNNING', now() - interval '1 minute'), ('alive', 'h', 2, 1, 'RUNNING', now())`); err != nil {
		t.Fatal(err)
	}
	session := func(name string) *sql.Conn {
		db, err := database.Open(ctx, b.db.URL, database.Options{MaxOpenConns: 1, ApplicationName: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		conn, err := db.DB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.ExecContext(ctx, "BEGIN; UPDATE hot SET n = n WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	dead := session("dead")
	alive, err := b.db.DB.DB.Conn(ctx) // a session named like no worker
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	aliveWorker := func() *sql.Conn {
		db, err := database.Open(ctx, b.db.URL, database.Options{MaxOpenConns: 1, ApplicationName: "alive"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c, err := db.DB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}()
	defer aliveWorker.Close()
	if _, err := b.engine.Failover(ctx, batch.ReconcileOptions{FailoverAfter: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := dead.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Fatal("the dead worker's session was not ended")
	}
	for name, c := range map[string]*sql.Conn{"the live worker's": aliveWorker, "another": alive} {
		if _, err := c.ExecContext(ctx, "SELECT 1"); err != nil {
			t.Fatalf("%s session was ended: %v", name, err)
		}
	}
	// The hot row the dead session had locked is free.
	if err := b.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.ExecContext(ctx, "SELECT n FROM hot WHERE id = 1 FOR UPDATE NOWAIT")
		return err
	}); err != nil {
		t.Fatalf("the dead worker's lock is still held: %v", err)
	}
}
