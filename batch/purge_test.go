package batch_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
)

// execFixture records an execution of instance key of job "j", created
// at at and ended at end (nil: running), with a parameter, a context, a
// partitioned step with one partition, their contexts and a skipped item.
// It returns the execution's id.
func execFixture(t *testing.T, db bun.IDB, key, status string, at time.Time, end *time.Time) int64 {
	t.Helper()
	ctx := context.Background()
	var inst, je, parent, part int64
	if err := db.NewRaw(`INSERT INTO batch_job_instance (job_name, job_key) VALUES ('j', ?)
		ON CONFLICT (job_name, job_key) DO UPDATE SET version = batch_job_instance.version RETURNING job_instance_id`, key).Scan(ctx, &inst); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw(`INSERT INTO batch_job_execution (job_instance_id, status, exit_code, create_time, start_time, end_time)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING job_execution_id`, inst, status, status, at, at, end).Scan(ctx, &je); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw(`WITH p AS (INSERT INTO batch_job_execution_params (job_execution_id, parameter_name, parameter_value, identifying) VALUES (?, 'k', ?, 'Y')),
			c AS (INSERT INTO batch_job_execution_context (job_execution_id) VALUES (?))
		INSERT INTO batch_step_execution (step_name, job_execution_id, status, exit_code, partitions_total) VALUES ('s', ?, ?, ?, 1)
		RETURNING step_execution_id`, je, key, je, je, status, status).Scan(ctx, &parent); err != nil {
		t.Fatal(err)
	}
	if err := db.NewRaw(`INSERT INTO batch_step_execution (step_name, job_execution_id, parent_step_execution_id, partition_key, status, exit_code)
		VALUES ('s:partition0', ?, ?, 's:partition-0000', ?, ?) RETURNING step_execution_id`, je, parent, status, status).Scan(ctx, &part); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO batch_step_execution_context (step_execution_id) VALUES (?), (?);
		INSERT INTO batch_skipped_item (step_execution_id, item_key, phase, error) VALUES (?, '1', 'write', 'bad')`, parent, part, part); err != nil {
		t.Fatal(err)
	}
	return je
}

// TestPurge: a purge deletes every instance whose executions all ended
// before the cutoff and whose last execution is final (COMPLETED or
// ABANDONED), with everything they hold, and nothing else: not an
// instance whose last execution FAILED (it can be restarted, and its
// earlier executions matter to that restart), not a running execution,
// not recent work. A dry run counts the same and deletes nothing; an
// export naming a purged execution keeps its row.
func TestPurge(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	ctx := context.Background()
	now := time.Now()
	old, recent := now.Add(-100*24*time.Hour), now.Add(-time.Hour)
	ended := func(t time.Time) *time.Time { t = t.Add(time.Minute); return &t }
	purged := map[string][]int64{
		"completed":        {execFixture(t, b.db, "completed", batch.StatusCompleted, old, ended(old))},
		"failed-completed": {execFixture(t, b.db, "fc", batch.StatusFailed, old, ended(old)), execFixture(t, b.db, "fc", batch.StatusCompleted, old.Add(time.Hour), ended(old.Add(time.Hour)))},
		"abandoned":        {execFixture(t, b.db, "abandoned", batch.StatusAbandoned, old, ended(old))},
	}
	kept := map[string][]int64{
		"failed-last":     {execFixture(t, b.db, "failed", batch.StatusFailed, old, ended(old))},
		"stopped-last":    {execFixture(t, b.db, "stopped", batch.StatusStopped, old, ended(old))},
		"running":         {execFixture(t, b.db, "running", batch.StatusStarted, old, nil)},
		"recent":          {execFixture(t, b.db, "recent", batch.StatusCompleted, recent, ended(recent))},
		"old-then-recent": {execFixture(t, b.db, "ocr", batch.StatusFailed, old, ended(old)), execFixture(t, b.db, "ocr", batch.StatusCompleted, recent, ended(recent))},
	}
	if _, err := b.db.ExecContext(ctx, `INSERT INTO export (id, kind, format, filter_hash, status, job_execution_id) VALUES (1, 'passes', 'csv', 'h', 'COMPLETED', ?)`,
		purged["completed"][0]); err != nil {
		t.Fatal(err)
	}
	before := now.Add(-90 * 24 * time.Hour)
	count := func(q string) int64 {
		var n int64
		if err := b.db.NewRaw(q).Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	totals := func() [7]int64 {
		return [7]int64{count("SELECT count(*) FROM batch_job_instance"), count("SELECT count(*) FROM batch_job_execution"),
			count("SELECT count(*) FROM batch_job_execution_params"), count("SELECT count(*) FROM batch_job_execution_context"),
			count("SELECT count(*) FROM batch_step_execution"), count("SELECT count(*) FROM batch_step_execution_context"),
			count("SELECT count(*) FROM batch_skipped_item")}
	}
	start := totals()
	dry, err := batch.Purge(ctx, b.db.DB, before, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := (batch.PurgeResult{Instances: 3, Executions: 4, Steps: 8}); dry != want || totals() != start {
		t.Fatalf("dry run: %+v (and the repository changed: %v), want %+v and nothing deleted", dry, totals() != start, want)
	}
	got, err := batch.Purge(ctx, b.db.DB, before, false)
	if err != nil {
		t.Fatal(err)
	}
	if got != dry {
		t.Fatalf("purge deleted %+v, the dry run said %+v", got, dry)
	}
	for what, ids := range purged {
		for _, id := range ids {
			if n := count("SELECT count(*) FROM batch_job_execution WHERE job_execution_id = " + itoa(id)); n != 0 {
				t.Errorf("%s: execution %d was kept", what, id)
			}
		}
	}
	for what, ids := range kept {
		for _, id := range ids {
			if n := count("SELECT count(*) FROM batch_step_execution WHERE job_execution_id = " + itoa(id)); n != 2 {
				t.Errorf("%s: execution %d lost its steps (%d left)", what, id, n)
			}
		}
	}
	// Everything the purged executions held went with them.
	if end, want := totals(), [7]int64{5, 6, 6, 6, 12, 12, 6}; end != want {
		t.Fatalf("after the purge the repository holds %v (instances, executions, params, contexts, steps, step contexts, skipped), want %v", end, want)
	}
	if n := count("SELECT count(*) FROM export WHERE id = 1 AND job_execution_id IS NULL"); n != 1 {
		t.Fatal("the export of a purged execution was not kept with its execution unset")
	}
	if again, err := batch.Purge(ctx, b.db.DB, before, false); err != nil || again != (batch.PurgeResult{}) {
		t.Fatalf("a second purge: %+v %v, want nothing", again, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
