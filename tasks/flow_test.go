package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
)

// brokenStore fails, while broken, every Put whose key matches (not
// retryable), and can hand out garbage for part files.
type brokenStore struct {
	storage.Store
	match   string
	broken  atomic.Bool
	garbage atomic.Bool
}

var errBroken = errors.New("bucket policy denies the write")

func (s *brokenStore) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if s.broken.Load() && strings.Contains(key, s.match) {
		return 0, &storage.Error{Op: "put", Key: key, Err: errBroken}
	}
	return s.Store.Put(ctx, key, r)
}

func (s *brokenStore) Open(ctx context.Context, key string) (storage.ReadSeekCloser, error) {
	if s.garbage.Load() && strings.Contains(key, "/parts/") {
		return nopSeekCloser{strings.NewReader(strings.Repeat("x", 64))}, nil
	}
	return s.Store.Open(ctx, key)
}

type nopSeekCloser struct{ *strings.Reader }

func (nopSeekCloser) Close() error { return nil }

// TestMakeStatisticsRestartRecounts: make-statistics fails at its reports;
// a booking arrives; the restart runs hourly again (AllowStartIfComplete)
// while a report that had completed does not run again, and the counts
// include the new booking.
func TestMakeStatisticsRestartRecounts(t *testing.T) {
	t.Parallel()
	bs := &brokenStore{match: "reports/daily/"}
	bs.broken.Store(true)
	b := setup(t, options{wrapStore: func(s storage.Store) storage.Store { bs.Store = s; return bs }})
	b.base(t)
	b.exec(t, `INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at) VALUES (1, 1, 1, 'PROGRESSED', 5, '2026-11-01T00:00:00Z');
		INSERT INTO booking (pass_id, user_id, status, attended, started_at, ended_at) VALUES (1, 1, 'COMPLETED', true, '2026-11-24T09:20:00Z', '2026-11-24T10:10:00Z')`)
	first := b.run(t, tasks.JobMakeStatistics, runAt, "from=2026-11-24T10:00:00Z", "to=2026-11-24T11:00:00Z")
	if first.Status != batch.StatusFailed {
		t.Fatalf("first run %s, want FAILED (daily report cannot be stored)", first.Status)
	}
	b.exec(t, `INSERT INTO booking (pass_id, user_id, status, attended, started_at, ended_at) VALUES (1, 1, 'CANCELLED', false, '2026-11-24T09:30:00Z', '2026-11-24T10:20:00Z')`)
	bs.broken.Store(false)
	next, err := b.engine.Restart(context.Background(), first.JobExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	requireCompleted(t, b.wait(t, next.JobExecutionID))
	if got := scan[string](t, b.db, "SELECT all_count || '/' || attended_count || '/' || cancelled_count FROM statistics"); got != "2/1/1" {
		t.Fatalf("statistics %s after the restart, want 2/1/1 (recounted)", got)
	}
	steps := scan[[]string](t, b.db, "SELECT step_name FROM batch_step_execution WHERE job_execution_id = ? AND parent_step_execution_id IS NULL ORDER BY step_name", next.JobExecutionID)
	if !strings.HasPrefix(strings.Join(steps, ","), "daily-report,hourly") {
		t.Fatalf("the restart ran %v, want hourly again and the failed daily-report", steps)
	}
	// weekly-report completed once: in the first run if it got there before
	// the failure ended the split, else in the restart.
	if n := scan[int](t, b.db, "SELECT count(*) FROM batch_step_execution WHERE step_name = 'weekly-report' AND status = 'COMPLETED'"); n != 1 {
		t.Fatalf("weekly-report completed %d times, want once", n)
	}
}

// TestNotifyBeforeClassNoop: with no class to announce, the job ends
// COMPLETED with exit status NOOP; with one, COMPLETED.
func TestNotifyBeforeClassNoop(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.base(t)
	je := b.run(t, tasks.JobNotifyBeforeClass, runAt)
	if je.Status != batch.StatusCompleted || je.ExitCode != batch.ExitNoop {
		t.Fatalf("nothing to send: %s %s, want COMPLETED NOOP", je.Status, je.ExitCode)
	}
	b.exec(t, `INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at) VALUES (1, 1, 1, 'PROGRESSED', 5, ?);
		INSERT INTO booking (pass_id, user_id, status, started_at, ended_at) VALUES (1, 1, 'READY', ?, ?)`, runAt.Add(-time.Hour), runAt.Add(5*time.Minute+time.Hour), runAt.Add(55*time.Minute+time.Hour))
	je = b.run(t, tasks.JobNotifyBeforeClass, runAt.Add(time.Hour))
	if je.Status != batch.StatusCompleted || je.ExitCode != batch.ExitCompleted {
		t.Fatalf("one notice: %s %s, want COMPLETED COMPLETED", je.Status, je.ExitCode)
	}
}

// TestExportCleanupAfterFailedMerge: a merge that fails goes to cleanup and
// the job ends FAILED with the merge's reason. When the upload is what
// failed, the parts stay and a restart finishes from them; when a part is
// unreadable, no restart can use them and they are removed, by the
// cleanup of the execution that found it (cleanup runs on every restart).
func TestExportCleanupAfterFailedMerge(t *testing.T) {
	t.Parallel()
	bs := &brokenStore{match: ".csv"}
	b := setup(t, options{partitions: 4, wrapStore: func(s storage.Store) storage.Store { bs.Store = s; return bs }})
	b.exportData(t, 3000)
	ctx := context.Background()
	launch := func(status string) (*models.Export, *batch.JobExecution) {
		e, _, err := tasks.RequestExport(ctx, b.db, tasks.ExportRequest{Kind: "bookings", Format: "csv", Filter: tasks.ExportFilter{Status: status}}, "test", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		je, err := b.engine.Launch(ctx, tasks.JobExport, batch.Params{tasks.ParamExportID: {Value: fmt.Sprint(e.ID), Identifying: true}})
		if err != nil {
			t.Fatal(err)
		}
		return e, b.wait(t, je.JobExecutionID)
	}
	parts := func(e *models.Export) int {
		l, err := b.store.List(ctx, fmt.Sprintf("exports/%d/parts/", e.ID))
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	bs.broken.Store(true) // the merged file cannot be stored
	e, je := launch("completed")
	cleanup := scan[string](t, b.db, "SELECT exit_code FROM batch_step_execution WHERE job_execution_id = ? AND step_name = 'cleanup'", je.JobExecutionID)
	failed := scan[models.Export](t, b.db, "SELECT * FROM export WHERE id = ?", e.ID)
	if je.Status != batch.StatusFailed || cleanup != "PARTS KEPT" || parts(e) == 0 || failed.Error == nil || !strings.Contains(*failed.Error, errBroken.Error()) {
		t.Fatalf("upload refused: job %s, cleanup %s, %d parts, export error %v", je.Status, cleanup, parts(e), deref(failed.Error))
	}
	bs.broken.Store(false)
	re, err := b.engine.Restart(ctx, je.JobExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	requireCompleted(t, b.wait(t, re.JobExecutionID))
	if done := scan[string](t, b.db, "SELECT status FROM export WHERE id = ?", e.ID); done != models.ExportCompleted || parts(e) != 0 {
		t.Fatalf("after the restart: export %s, %d parts", done, parts(e))
	}

	// Another export fails its upload (parts kept); its restart then
	// finds the parts unreadable: cleanup runs again in the restart and
	// removes them.
	bs.broken.Store(true)
	e, je = launch("cancelled")
	if cleanup := scan[string](t, b.db, "SELECT exit_code FROM batch_step_execution WHERE job_execution_id = ? AND step_name = 'cleanup'", je.JobExecutionID); cleanup != "PARTS KEPT" || parts(e) == 0 {
		t.Fatalf("upload refused: cleanup %s, %d parts", cleanup, parts(e))
	}
	bs.broken.Store(false)
	bs.garbage.Store(true) // the store is back, but the parts read back as garbage
	re, err = b.engine.Restart(ctx, je.JobExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	je = b.wait(t, re.JobExecutionID)
	cleanup = scan[string](t, b.db, "SELECT exit_code FROM batch_step_execution WHERE job_execution_id = ? AND step_name = 'cleanup'", je.JobExecutionID)
	if je.Status != batch.StatusFailed || cleanup != "PARTS REMOVED" || parts(e) != 0 || !strings.Contains(je.ExitMessage, "bad part file") {
		t.Fatalf("unreadable parts on the restart: job %s %q, cleanup %s, %d parts left", je.Status, je.ExitMessage, cleanup, parts(e))
	}
}
