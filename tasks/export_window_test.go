package tasks

import (
	"context"
	"fmt"
	"testing"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/testenv"
)

// TestExportReaderWindows reads a partition chunk by chunk as the engine
// does (each read from one past the last key, a short read ending it)
// over keys with gaps: a filter that keeps one booking in seven, then a
// gap of a million keys. Each read is a window of keys sized from the
// last chunk and widened until it finds its rows, so every chunk but the
// last is full, and together they hold every kept row once, in order.
func TestExportReaderWindows(t *testing.T) {
	ctx := context.Background()
	db := testenv.NewDB(t)
	if _, err := db.ExecContext(ctx, `INSERT INTO users (id, name, email) VALUES (1, '회원', 'u@x');
		INSERT INTO package (id, name, count, period_days) VALUES (1, 'PT 10', 10, 60);
		INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at) VALUES (1, 1, 1, 'PROGRESSED', 5, now());
		INSERT INTO booking (id, pass_id, user_id, status, started_at, ended_at)
		SELECT i, 1, 1, CASE WHEN i % 7 = 0 THEN 'CANCELLED' ELSE 'COMPLETED' END, now(), now() + interval '50 minutes'
		FROM (SELECT generate_series(1, 3000) UNION ALL SELECT generate_series(1000001, 1000700)) AS s(i);
		INSERT INTO export (id, kind, format, filter_hash, status, filter) VALUES
		(1, 'bookings', 'csv', 'a', 'RUNNING', '{"status": "CANCELLED"}'), (2, 'bookings', 'xlsx', 'b', 'RUNNING', '{"status": "CANCELLED"}')`); err != nil {
		t.Fatal(err)
	}
	var want []int64
	for i := int64(7); i <= 1000700; i += 7 {
		if i <= 3000 || i > 1000000 {
			want = append(want, i)
		}
	}
	for id := range []int{1, 2} {
		r := exportReader{cache: &exportCache{}}
		sc := &batch.StepContext{Params: batch.Params{ParamExportID: {Value: fmt.Sprint(id + 1), Identifying: true}}, StepExecutionID: 1}
		var got []int64
		for from, reads := int64(1), 0; ; reads++ {
			rows, err := r.Read(ctx, db.DB, sc, from, 2_000_000, 40)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range rows {
				got = append(got, row.ID)
			}
			if len(rows) < 40 {
				break
			}
			if reads > len(want) {
				t.Fatal("reads do not end")
			}
			from = rows[len(rows)-1].ID + 1
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("export %d read %d rows %v…, want %d rows %v…", id+1, len(got), got[:min(5, len(got))], len(want), want[:5])
		}
	}
}
