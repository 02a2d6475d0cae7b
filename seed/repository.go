package seed

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Repository fills the job repository with n finished executions of jobs,
// as months of a running fleet leave them: one instance each (a scheduled
// job's run.at makes a new instance every tick), every 10 seconds back
// from now, about 1 in 50 FAILED, each with its run.at parameter, its
// context and two step executions (a partitioned step and one partition).
// It is set-based (a few INSERT … SELECT statements in one transaction),
// for tests and benchmarks of a large repository, and it adds to what is
// there.
func Repository(ctx context.Context, db bun.IDB, jobs []string, n int, now time.Time) error {
	if n <= 0 || len(jobs) == 0 {
		return nil
	}
	stmts := []string{
		`CREATE TEMP TABLE seed_exec ON COMMIT DROP AS
			SELECT g AS k, (?::text[])[1 + g % ?] AS job_name, ?::timestamptz - g * interval '10 seconds' AS at,
				CASE WHEN g % 50 = 7 THEN 'FAILED' ELSE 'COMPLETED' END AS status
			FROM generate_series(1, ?) g`,
		`ALTER TABLE seed_exec ADD COLUMN instance bigint, ADD COLUMN execution bigint, ADD COLUMN step bigint`,
		`UPDATE seed_exec SET instance = nextval('batch_job_instance_job_instance_id_seq'),
			execution = nextval('batch_job_execution_job_execution_id_seq')`,
		`INSERT INTO batch_job_instance (job_instance_id, job_name, job_key, create_time)
			SELECT instance, job_name, md5('seed' || k || '@' || at), at FROM seed_exec`,
		`INSERT INTO batch_job_execution (job_execution_id, job_instance_id, job_name, status, exit_code, exit_message, create_time, start_time, end_time, last_updated)
			SELECT execution, instance, job_name, status, status, CASE WHEN status = 'FAILED' THEN 'step deduct failed: seeded' ELSE '' END,
				at, at, at + interval '2 seconds', at + interval '2 seconds' FROM seed_exec`,
		`INSERT INTO batch_job_execution_params (job_execution_id, parameter_name, parameter_type, parameter_value, identifying)
			SELECT execution, 'run.at', 'java.util.Date', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'Y' FROM seed_exec`,
		`INSERT INTO batch_job_execution_context (job_execution_id) SELECT execution FROM seed_exec`,
		`UPDATE seed_exec SET step = nextval('batch_step_execution_step_execution_id_seq')`,
		`INSERT INTO batch_step_execution (step_execution_id, step_name, job_execution_id, status, exit_code, partitions_total, partitions_done,
				read_count, write_count, commit_count, start_time, end_time, last_updated)
			SELECT step, 'work', execution, status, status, 1, 1, 100, 100, 1, at, at + interval '2 seconds', at + interval '2 seconds' FROM seed_exec`,
		`INSERT INTO batch_step_execution (step_name, job_execution_id, parent_step_execution_id, partition_key, range_start, range_end, status, exit_code,
				read_count, write_count, commit_count, start_time, end_time, last_updated)
			SELECT 'work:partition0', execution, step, 'work:partition-0000', 0, 1000, status, status, 100, 100, 1,
				at, at + interval '2 seconds', at + interval '2 seconds' FROM seed_exec`,
	}
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// The rows are consistent by construction: a superuser (tests,
		// benchmarks) skips the per-row foreign-key and job-name triggers,
		// which are most of the time of a million rows.
		var super bool
		if err := tx.NewRaw("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(ctx, &super); err == nil && super {
			if _, err := tx.ExecContext(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
				return fmt.Errorf("seed the job repository: %w", err)
			}
		}
		for i, q := range stmts {
			var args []any
			if i == 0 {
				args = []any{pgdialect.Array(jobs), len(jobs), now, n}
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("seed the job repository (statement %d): %w", i+1, err)
			}
		}
		_, err := tx.ExecContext(ctx, "ANALYZE batch_job_instance, batch_job_execution, batch_step_execution")
		return err
	})
}
