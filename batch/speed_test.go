package batch_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
)

type grouped struct {
	ID int64 `bun:"id"`
	K  int64 `bun:"k"`
}

// TestGroupedReaderKeepsKeysWhole: a step partitioned and read by a key
// that repeats (bookings by pass) gives each key to one chunk: a chunk
// never splits a key's items, a key with more items than a chunk is read
// whole in one chunk, and every item is written once.
func TestGroupedReaderKeepsKeysWhole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	filter := func(q *bun.SelectQuery, _ *batch.StepContext) *bun.SelectQuery { return q }
	job := &batch.Job{Name: "by-key", Flow: []batch.Node{batch.NewChunk("write", batch.ChunkStep[grouped, grouped]{
		Reader: batch.KeysetReader[grouped]{Column: "k", Then: "id", Group: true,
			Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
				return q.TableExpr("g").Column("id", "k")
			},
			KeyOf: func(it grouped) int64 { return it.K }},
		ChunkSize:   10,
		Partitioner: batch.KeyRangePartitioner("g", "k", 3, filter),
		Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []grouped) error {
			ids := make([]int64, len(items))
			for i, it := range items {
				ids[i] = it.ID
			}
			_, err := tx.NewRaw("UPDATE g SET n = n + 1, chunk = ? WHERE id = ANY(?)", sc.ChunkStart, pgdialect.Array(ids)).Exec(ctx)
			return err
		},
	})}}
	b := setup(t, 0, job)
	// 40 keys of 1 to 7 items, and key 17 with 25 (more than a chunk).
	if _, err := b.db.ExecContext(ctx, `CREATE TABLE g (id bigserial PRIMARY KEY, k bigint NOT NULL, n int NOT NULL DEFAULT 0 CHECK (n <= 1), chunk bigint);
		INSERT INTO g (k) SELECT k FROM generate_series(1, 40) k, generate_series(1, 1 + k % 7) i WHERE k <> 17;
		INSERT INTO g (k) SELECT 17 FROM generate_series(1, 25)`); err != nil {
		t.Fatal(err)
	}
	b.startWorkers(t, 1, 4)
	requireStatus(t, b.wait(t, b.launch(t, "by-key"), time.Minute), batch.StatusCompleted)
	var bad struct {
		NotOnce, SplitKeys, Rows int
	}
	if err := b.db.NewRaw(`SELECT (SELECT count(*) FROM g WHERE n <> 1) AS not_once,
		(SELECT count(*) FROM (SELECT k FROM g GROUP BY k HAVING count(DISTINCT chunk) > 1) x) AS split_keys,
		(SELECT count(*) FROM g) AS rows`).Scan(ctx, &bad.NotOnce, &bad.SplitKeys, &bad.Rows); err != nil {
		t.Fatal(err)
	}
	if bad.NotOnce != 0 || bad.SplitKeys != 0 {
		t.Fatalf("of %d rows, %d not written once; %d keys split between chunks", bad.Rows, bad.NotOnce, bad.SplitKeys)
	}
}

// TestPartitionsAtOnce: a step of 8 partitions allowed 2 at once runs at
// most 2 at any moment across a fleet with 8 free slots, and every
// partition runs: each one that ends queues the next.
func TestPartitionsAtOnce(t *testing.T) {
	t.Parallel()
	const rows = 800
	var running, peak atomic.Int32
	step := testjob.IncStep("inc", testjob.Options{Partitions: 8, ChunkSize: 25, Processor: func(ctx context.Context, sc *batch.StepContext, it testjob.Item) (testjob.Item, error) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		running.Add(-1)
		return it, nil
	}})
	b := setup(t, rows, &batch.Job{Name: "two-at-once", Flow: []batch.Node{step}})
	b.engine = batch.New(b.db.DB, b.client, b.engine.Registry(), batch.Options{Logger: quietLogger(), PartitionsAtOnce: 2})
	b.startWorkers(t, 2, 4)
	id := b.launch(t, "two-at-once")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	if p := peak.Load(); p != 2 {
		t.Fatalf("at most %d partitions ran at once, want 2 (PartitionsAtOnce) with 8 free slots", p)
	}
	if s := topStep(t, b.db, id, "inc"); s.ReadCount != rows || s.WriteCount != rows {
		t.Fatalf("step read %d and wrote %d, want %d", s.ReadCount, s.WriteCount, rows)
	}
}
