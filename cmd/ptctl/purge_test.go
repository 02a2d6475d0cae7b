package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/passbatch/passbatch/internal/testenv"
)

// TestJobsPurge: `ptctl jobs purge --before DATE --dry-run` says what it
// would delete and deletes nothing; without --dry-run it deletes the old
// finished instance and keeps the recent one; a date in the future or
// none at all is a usage error (exit 2).
func TestJobsPurge(t *testing.T) {
	db := testenv.NewDB(t)
	t.Setenv("DATABASE_URL", db.URL)
	t.Setenv("REDIS_URL", "")
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO batch_job_instance (job_instance_id, job_name, job_key) VALUES (1, 'j', 'old'), (2, 'j', 'new');
		INSERT INTO batch_job_execution (job_instance_id, status, exit_code, create_time, end_time) VALUES
			(1, 'COMPLETED', 'COMPLETED', now() - interval '200 days', now() - interval '200 days'),
			(2, 'COMPLETED', 'COMPLETED', now() - interval '1 day', now() - interval '1 day')`); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		if err := db.NewRaw("SELECT count(*) FROM batch_job_execution").Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := time.Now().AddDate(0, 0, -90).Format("2006-01-02")
	var out bytes.Buffer
	if err := run(ctx, []string{"jobs", "purge", "--before", before, "--dry-run"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "would delete 1 job instances, 1 executions") || count() != 2 {
		t.Fatalf("dry run printed %q and left %d executions", out.String(), count())
	}
	out.Reset()
	if err := run(ctx, []string{"jobs", "purge", "--before", before}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "deleted 1 job instances, 1 executions") || count() != 1 {
		t.Fatalf("purge printed %q and left %d executions, want 1", out.String(), count())
	}
	for _, args := range [][]string{{"jobs", "purge"}, {"jobs", "purge", "--before", time.Now().AddDate(0, 0, 2).Format("2006-01-02")}, {"jobs", "purge", "--before", "yesterday"}} {
		var ee *exitError
		if err := run(ctx, args, &out, &out); !errors.As(err, &ee) || ee.code != 2 {
			t.Fatalf("%v: %v, want a usage error", args, err)
		}
	}
}
