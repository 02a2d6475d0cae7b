// Package testjob declares the jobs the engine's tests run: chunk steps over
// a table t whose column n counts how often an item's effect was applied, so
// a double application shows as n = 2 (and is refused by CHECK (n <= 1)).
package testjob

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
)

// Item is a row of t. Bad makes the processor ("process") or the writer
// ("write") fail on it, or is "" for a good row.
type Item struct {
	ID  int64  `bun:"id"`
	N   int    `bun:"n"`
	Bad string `bun:"bad"`
}

// CreateTable creates t with rows good rows, and hot: one row every chunk
// of a Hot job adds its item count to, so all partitions contend for it.
func CreateTable(ctx context.Context, db bun.IDB, rows int) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id bigserial PRIMARY KEY, n int NOT NULL DEFAULT 0 CHECK (n <= 1),
		bad text NOT NULL DEFAULT '', flag bool NOT NULL DEFAULT false);
		CREATE TABLE hot (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
		INSERT INTO hot (id) VALUES (1);
		CREATE TABLE step_calls (id bigserial PRIMARY KEY, step text NOT NULL, key bigint NOT NULL,
			worker text NOT NULL DEFAULT current_setting('application_name'), at timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
		return fmt.Errorf("create t: %w", err)
	}
	if rows > 0 {
		if _, err := db.ExecContext(ctx, `INSERT INTO t (n) SELECT 0 FROM generate_series(1, ?)`, rows); err != nil {
			return fmt.Errorf("fill t: %w", err)
		}
	}
	return nil
}

// Options shape IncJob.
type Options struct {
	Partitions, ChunkSize, Concurrency int // Partitions: default 8; negative: the launch's or the engine's count
	Skip                               batch.SkipPolicy
	Retry                              batch.RetryPolicy
	// Where filters the rows read (SQL over t), e.g. "flag = false".
	Where string
	// SetFlag makes the writer also set flag = true: a writer that changes
	// the reader's filter column.
	SetFlag bool
	// Hot makes the writer also add the chunk's size to the one row of hot,
	// then wait the param hold_ms with that row locked: every partition
	// contends for one lock, as passes shared by many bookings do.
	Hot bool
	// Processor replaces the default processor (which fails items whose bad
	// is "process", and sleeps the param sleep_ms per item).
	Processor batch.Processor[Item, Item]
}

// IncJob declares job name: one chunk step "inc" setting n = n + 1 on every
// row of t, partitioned by id.
func IncJob(name string, o Options) *batch.Job {
	return &batch.Job{Name: name, Flow: []batch.Node{IncStep("inc", o)}}
}

// IncStep is IncJob's step, for composing other test jobs.
func IncStep(step string, o Options) *batch.Step {
	if o.Partitions == 0 {
		o.Partitions = 8
	}
	filter := func(q *bun.SelectQuery, _ *batch.StepContext) *bun.SelectQuery {
		if o.Where != "" {
			q = q.Where(o.Where)
		}
		return q
	}
	proc := o.Processor
	if proc == nil {
		proc = process
	}
	return batch.NewChunk(step, batch.ChunkStep[Item, Item]{
		Reader: batch.KeysetReader[Item]{
			Column: "id",
			Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
				return filter(q.TableExpr("t").Column("id", "n", "bad"), sc)
			},
			KeyOf: func(it Item) int64 { return it.ID },
		},
		Processor:   proc,
		Writer:      o.write,
		ChunkSize:   o.ChunkSize,
		Concurrency: o.Concurrency,
		Partitioner: batch.KeyRangePartitioner("t", "id", o.Partitions, filter),
		Skip:        o.Skip,
		Retry:       o.Retry,
	})
}

// process is the default processor: it fails items whose bad is
// "process", filters those whose bad is "filter", and sleeps the param
// sleep_ms per item.
func process(ctx context.Context, sc *batch.StepContext, it Item) (Item, error) {
	if ms, _ := sc.Params.Int("sleep_ms", 0); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	if it.Bad == "process" {
		return it, batch.Skippable(fmt.Errorf("item %d is bad", it.ID))
	}
	if it.Bad == "filter" {
		return it, batch.ErrFiltered
	}
	return it, nil
}

// write sets n = n + 1 on the items in one statement (an item whose bad is
// "write" fails it, as a CHECK violation would; one whose bad is "timeout"
// fails it with a statement timeout, an infrastructure error), and for a Hot job adds
// the chunk to the hot row and holds it the param hold_ms.
func (o Options) write(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []Item) error {
	ids := make([]int64, 0, len(items))
	for _, it := range items {
		if it.Bad == "timeout" { // poison: a statement timeout every time
			if _, err := tx.ExecContext(ctx, "SET LOCAL statement_timeout = 20; SELECT pg_sleep(1)"); err != nil {
				return err
			}
		}
		if it.Bad == "write" {
			if _, err := tx.ExecContext(ctx, "UPDATE t SET n = 2 WHERE id = ?", it.ID); err != nil {
				return batch.Skippable(err)
			}
		}
		ids = append(ids, it.ID)
	}
	set := "n = n + 1"
	if o.SetFlag {
		set += ", flag = true"
	}
	if _, err := tx.NewRaw("UPDATE t SET "+set+" WHERE id = ANY(?)", pgdialect.Array(ids)).Exec(ctx); err != nil {
		return err
	}
	if !o.Hot {
		return nil
	}
	if _, err := tx.NewRaw("UPDATE hot SET n = n + ? WHERE id = 1", len(ids)).Exec(ctx); err != nil {
		return err
	}
	if ms, _ := sc.Params.Int("hold_ms", 0); ms > 0 {
		time.Sleep(time.Duration(ms) * time.Millisecond) // a slow write, the lock held
	}
	return nil
}

// SlowCallJob declares job name: one IOTasklet "call" that records each
// call in step_calls (step 'call', key 0) and, on the first call only, takes the
// param sleep_ms outside any transaction (a slow webhook, a big merge), then
// finishes. A second call shows as a second row.
func SlowCallJob(name string) *batch.Job {
	return &batch.Job{Name: name, Flow: []batch.Node{batch.NewIOTasklet("call",
		func(ctx context.Context, db bun.IDB, sc *batch.StepContext) (batch.RepeatStatus, error) {
			first, err := Record(ctx, db, "call", 0)
			if err != nil {
				return batch.Finished, err
			}
			if ms, _ := sc.Params.Int("sleep_ms", 0); first && ms > 0 {
				if err := sleep(ctx, time.Duration(ms)*time.Millisecond); err != nil {
					return batch.Finished, err
				}
			}
			sc.Counts.Write = 1
			return batch.Finished, nil
		})}}
}

// SlowProcessJob declares job name: IncJob over one partition whose
// processor records each item in step_calls (step 'process') and, the first
// time it sees an item, takes the param item_ms: a chunk that spends a
// long time outside its transaction, as a chunk calling a slow webhook does.
// The processor records through db (a processor is given none).
func SlowProcessJob(name string, chunk int, db bun.IDB) *batch.Job {
	return IncJob(name, Options{Partitions: 1, ChunkSize: chunk, Processor: func(ctx context.Context, sc *batch.StepContext, it Item) (Item, error) {
		first, err := Record(ctx, db, "process", it.ID)
		if err != nil {
			return it, err
		}
		if ms, _ := sc.Params.Int("item_ms", 0); first && ms > 0 {
			if err := sleep(ctx, time.Duration(ms)*time.Millisecond); err != nil {
				return it, err
			}
		}
		return it, nil
	}})
}

// Record records a call of step for key in step_calls, committed at once, and
// reports whether it was the first for that step and key.
func Record(ctx context.Context, db bun.IDB, step string, key int64) (first bool, err error) {
	var n int
	if err := db.NewRaw(`WITH i AS (INSERT INTO step_calls (step, key) VALUES (?, ?) RETURNING id)
		SELECT count(*) FROM step_calls WHERE step = ? AND key = ?`, step, key, step, key).Scan(ctx, &n); err != nil {
		return false, fmt.Errorf("record call: %w", err)
	}
	return n == 0, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Registry holds the jobs the test worker binary serves, over db: "inc" (8
// partitions, chunk 100), "inc-wide" (16 partitions, chunk 50),
// "inc-hot" (8 partitions, chunk 50, every chunk updating the hot row) and
// "inc-bench" (32 partitions, chunk 5000), "slow-call" (SlowCallJob) and
// "slow-process" (SlowProcessJob, chunks of 5).
func Registry(db bun.IDB) *batch.Registry {
	return batch.NewRegistry(append(Jobs(), SlowProcessJob("slow-process", 5, db))...)
}

// Jobs are the jobs of Registry.
func Jobs() []*batch.Job {
	return []*batch.Job{
		IncJob("inc", Options{Partitions: 8, ChunkSize: 100}),
		IncJob("inc-wide", Options{Partitions: 16, ChunkSize: 50}),
		IncJob("inc-hot", Options{Partitions: 8, ChunkSize: 50, Hot: true}),
		IncJob("inc-bench", Options{Partitions: 32, ChunkSize: 5000}),
		SlowCallJob("slow-call"),
	}
}

// IDs formats ids for messages.
func IDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}
