package migrations_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/migrations"
)

// TestConstraints checks that the database itself refuses what the design
// forbids, each with the constraint that should refuse it.
func TestConstraints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	setup := `
		INSERT INTO package (id, name, count, period_days) VALUES (1, 'PT 10', 10, 60);
		INSERT INTO users (id, name, email) VALUES (1, 'a', 'a@x'), (2, 'b', 'b@x');
		INSERT INTO user_group (id, name) VALUES (1, 'g');
		INSERT INTO bulk_pass (id, package_id, user_group_id, started_at) VALUES (1, 1, 1, now());
		INSERT INTO pass (id, package_id, user_id, bulk_pass_id, status, remaining_count, started_at) VALUES (1, 1, 1, 1, 'PROGRESSED', 3, now());
		INSERT INTO batch_job_instance (job_instance_id, job_name, job_key) VALUES (1, 'j', 'k');
		INSERT INTO batch_job_execution (job_instance_id, status) VALUES (1, 'STARTED');`
	if _, err := db.ExecContext(ctx, setup); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, sql, wantCode string
	}{
		{"negative remaining count", "UPDATE pass SET remaining_count = -1 WHERE id = 1", "23514"},
		{"second pass for one bulk pass and user", "INSERT INTO pass (package_id, user_id, bulk_pass_id, started_at) VALUES (1, 1, 1, now())", "23505"},
		{"second running execution of an instance", "INSERT INTO batch_job_execution (job_instance_id, status) VALUES (1, 'STOPPING')", "23505"},
		{"unknown pass status", "UPDATE pass SET status = 'USED' WHERE id = 1", "23514"},
		{"expired without expired_at", "UPDATE pass SET status = 'EXPIRED' WHERE id = 1", "23514"},
		{"zero-use package", "INSERT INTO package (name, count) VALUES ('x', 0)", "23514"},
		{"booking of unknown pass", "INSERT INTO booking (pass_id, user_id, started_at, ended_at) VALUES (99, 1, now(), now() + interval '1 hour')", "23503"},
		{"booking ending before it starts", "INSERT INTO booking (pass_id, user_id, started_at, ended_at) VALUES (1, 1, now(), now() - interval '1 hour')", "23514"},
		{"duplicate notification", "INSERT INTO notification (user_id, event, dedup_key, text) VALUES (1, 'BEFORE_CLASS', 'k', 't'), (1, 'BEFORE_CLASS', 'k', 't')", "23505"},
		{"unknown execution status", "INSERT INTO batch_job_execution (job_instance_id, status) VALUES (1, 'RUNNING')", "23514"},
		{"duplicate user email", "INSERT INTO users (name, email) VALUES ('c', 'a@x')", "23505"},
	}
	for _, tt := range tests {
		_, err := db.ExecContext(ctx, tt.sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != tt.wantCode {
			t.Errorf("%s: got %v, want SQLSTATE %s", tt.name, err, tt.wantCode)
		}
	}
	// A finished execution frees the instance for the next one.
	if _, err := db.ExecContext(ctx, "UPDATE batch_job_execution SET status = 'FAILED'; INSERT INTO batch_job_execution (job_instance_id, status) VALUES (1, 'STARTING')"); err != nil {
		t.Fatalf("a new execution after a failed one: %v", err)
	}
}

func TestUpIsIdempotent(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t) // already migrated from the template
	applied, err := migrations.Up(context.Background(), db.DB)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second Up applied %v, want nothing", applied)
	}
	list, err := migrations.List(context.Background(), db.DB)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if !m.Applied {
			t.Fatalf("migration %s not applied", m.Name)
		}
	}
	if len(list) == 0 {
		t.Fatal("no migrations listed")
	}
}
