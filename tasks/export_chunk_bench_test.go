package tasks

import (
	"context"
	"testing"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/storage"
)

// BenchmarkExportChunk is one export chunk outside the engine: read 5,000
// booking rows by key, then encode and store them as a part (CSV and
// XLSX). With -cpuprofile it shows where a partition's time goes.
func BenchmarkExportChunk(b *testing.B) {
	for _, format := range []string{"csv", "xlsx"} {
		b.Run(format, func(b *testing.B) { benchmarkExportChunk(b, format) })
	}
}

func benchmarkExportChunk(b *testing.B, format string) {
	ctx := context.Background()
	db := testenv.NewDB(b)
	if _, err := db.ExecContext(ctx, `INSERT INTO users (id, name, email) SELECT i, '회원' || i, 'u' || i || '@x' FROM generate_series(1, 100) i;
		INSERT INTO package (id, name, count, period_days) VALUES (1, 'PT 10', 10, 60);
		INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at) SELECT i, 1, i, 'PROGRESSED', 5, now() FROM generate_series(1, 100) i;
		INSERT INTO booking (pass_id, user_id, status, attended, started_at, ended_at)
		SELECT 1 + i % 100, 1 + i % 100, 'COMPLETED', i % 3 = 0, now() + i * interval '1 minute', now() + i * interval '1 minute' + interval '50 minutes' FROM generate_series(1, 5000) i;
		INSERT INTO export (id, kind, format, filter_hash, status, filter) VALUES (1, 'bookings', ?, 'h', 'RUNNING', '{}')`, format); err != nil {
		b.Fatal(err)
	}
	store, err := storage.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	r := exportReader{cache: &exportCache{}}
	sc := &batch.StepContext{Params: batch.Params{ParamExportID: {Value: "1", Identifying: true}}, StepExecutionID: 1, Range: batch.Range{Start: 0, End: 1 << 40}}
	var rows int
	for b.Loop() {
		got, err := r.Read(ctx, db.DB, sc, 0, 1<<40, 5000)
		if err != nil || len(got) != 5000 {
			b.Fatalf("%d rows, %v", len(got), err)
		}
		x, _ := r.cache.get(ctx, db.DB, sc)
		if err := storePart(ctx, store, sc, format, x.kind, got); err != nil {
			b.Fatal(err)
		}
		rows += len(got)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
