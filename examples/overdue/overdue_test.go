package overdue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/examples/overdue"
	"github.com/passbatch/passbatch/internal/testenv"
)

// reminder records every reminder and fails as told: addresses at
// bad.example never work, every 50th invoice fails once (a service having
// a bad second), and once broken is set everything fails for good.
type reminder struct {
	mu     sync.Mutex
	sent   map[int64]int
	flaky  map[int64]bool
	broken bool
}

func (r *reminder) Remind(_ context.Context, inv overdue.Invoice) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.broken:
		return errors.New("the reminder service is down")
	case strings.HasSuffix(inv.Email, "@bad.example"):
		return fmt.Errorf("%s: %w", inv.Email, overdue.ErrBadAddress)
	case inv.ID%50 == 0 && !r.flaky[inv.ID]:
		r.flaky[inv.ID] = true
		return batch.Retryable(errors.New("503 from the reminder service"))
	}
	r.sent[inv.ID]++
	return nil
}

// start gives the test a database with n due invoices (every 200th with
// a bad address), Redis, an engine with the job and one worker.
func start(t *testing.T, n int) (*batch.Engine, *bun.DB, *reminder) {
	t.Helper()
	ctx := context.Background()
	db := testenv.NewDB(t)
	rd := testenv.NewRedis(t)
	if _, err := db.ExecContext(ctx, overdue.Schema); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO invoice (email, amount, due_at)
		SELECT CASE WHEN i % 200 = 0 THEN 'm' || i || '@bad.example' ELSE 'm' || i || '@example.com' END, 10000, now() - interval '1 day'
		FROM generate_series(1, ?) i`, n); err != nil {
		t.Fatal(err)
	}
	opt, err := asynq.ParseRedisURI(rd.URL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	r := &reminder{sent: map[int64]int{}, flaky: map[int64]bool{}}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := batch.New(db.DB, client, batch.NewRegistry(overdue.Job(r, 4)), batch.Options{Logger: quiet})
	w := eng.NewWorker(opt, batch.WorkerOptions{Concurrency: 4, Logger: quiet, ShutdownTimeout: 5 * time.Second})
	if err := w.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })
	return eng, db.DB, r
}

// wait polls execution id until it has ended.
func wait(t *testing.T, eng *batch.Engine, id int64) *batch.ExecutionDetail {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		d, err := eng.Execution(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !batch.Running(d.Status) {
			return d
		}
	}
	t.Fatalf("execution %d still running after a minute", id)
	return nil
}

func count(t *testing.T, db *bun.DB, where string) int {
	t.Helper()
	var n int
	if err := db.NewRaw("SELECT count(*) FROM invoice WHERE "+where).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMarkOverdue: every due invoice with a good address is reminded once
// and marked OVERDUE, through four partitions; the 503s are retried; the
// bad addresses are skipped with their reason and stay OPEN.
func TestMarkOverdue(t *testing.T) {
	t.Parallel()
	eng, db, r := start(t, 2000)
	je, err := eng.Launch(context.Background(), overdue.Name, batch.Params{})
	if err != nil {
		t.Fatal(err)
	}
	d := wait(t, eng, je.JobExecutionID)
	if d.Status != batch.StatusCompleted {
		t.Fatalf("%s: %s", d.Status, d.ExitMessage)
	}
	if overdueN, open := count(t, db, "status = 'OVERDUE'"), count(t, db, "status = 'OPEN'"); overdueN != 1990 || open != 10 {
		t.Fatalf("%d OVERDUE and %d OPEN, want 1990 and 10 (the bad addresses)", overdueN, open)
	}
	for id, n := range r.sent {
		if n != 1 {
			t.Fatalf("invoice %d reminded %d times", id, n)
		}
	}
	if len(r.sent) != 1990 || len(d.Skipped) != 10 || !strings.Contains(d.Skipped[0].Error, "no such address") {
		t.Fatalf("%d reminded, %d skipped (%v)", len(r.sent), len(d.Skipped), d.Skipped)
	}
}

// TestRestartResumes: when the reminder service goes down for good the job
// FAILS; once it is back, a restart finishes the work from the last
// committed chunk of each partition: what was committed is not sent again.
func TestRestartResumes(t *testing.T) {
	t.Parallel()
	eng, db, r := start(t, 2000)
	ctx := context.Background()
	// The service breaks after a thousand reminders, mid-chunk.
	go func() {
		for {
			r.mu.Lock()
			if len(r.sent) >= 1000 {
				r.broken = true
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	je, err := eng.Launch(ctx, overdue.Name, batch.Params{})
	if err != nil {
		t.Fatal(err)
	}
	if d := wait(t, eng, je.JobExecutionID); d.Status != batch.StatusFailed {
		t.Fatalf("with the service down: %s, want FAILED", d.Status)
	}
	done := count(t, db, "status = 'OVERDUE'")
	if done == 0 || done >= 1990 {
		t.Fatalf("%d marked before the failure, want some", done)
	}
	r.mu.Lock()
	r.broken = false
	r.mu.Unlock()
	again, err := eng.Restart(ctx, je.JobExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	if d := wait(t, eng, again.JobExecutionID); d.Status != batch.StatusCompleted {
		t.Fatalf("restart: %s %s", d.Status, d.ExitMessage)
	}
	if n := count(t, db, "status = 'OVERDUE'"); n != 1990 {
		t.Fatalf("%d OVERDUE after the restart, want 1990", n)
	}
	// Only the chunks that failed may have sent twice: at most one chunk
	// of 200 per partition.
	twice := 0
	for _, n := range r.sent {
		if n > 1 {
			twice++
		}
	}
	if twice > 4*200 {
		t.Fatalf("%d invoices reminded twice: the restart redid committed chunks", twice)
	}
}
