package batch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/testenv"
)

// exampleEngine gives an example its own database and Redis (from
// DATABASE_URL and REDIS_URL, as `make test` sets them), an engine over
// jobs and one in-process worker. Call the returned func when done.
func exampleEngine(jobs ...*batch.Job) (*batch.Engine, *bun.DB, func()) {
	env := &testenv.Example{}
	db := testenv.NewDB(env)
	rd := testenv.NewRedis(env)
	opt, err := asynq.ParseRedisURI(rd.URL)
	if err != nil {
		panic(err)
	}
	client := asynq.NewClient(opt)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := batch.New(db.DB, client, batch.NewRegistry(jobs...), batch.Options{Logger: quiet})
	w := eng.NewWorker(opt, batch.WorkerOptions{Concurrency: 4, Logger: quiet, ShutdownTimeout: 5 * time.Second})
	if err := w.Start(context.Background(), nil); err != nil {
		panic(err)
	}
	return eng, db.DB, func() {
		w.Stop(context.Background())
		client.Close()
		env.Close()
	}
}

// waitFor polls an execution until it has ended.
func waitFor(eng *batch.Engine, id int64) *batch.ExecutionDetail {
	for {
		d, err := eng.Execution(context.Background(), id)
		if err != nil {
			panic(err)
		}
		if !batch.Running(d.Status) {
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A job of two tasklet steps: the second runs when the first completed.
// Each call of a tasklet runs in one transaction with the step's context
// and counts.
func Example_twoStepJob() {
	hello := batch.NewTasklet("hello", func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
		_, err := tx.ExecContext(ctx, "CREATE TABLE greeting (who text)")
		return batch.Finished, err
	})
	greet := batch.NewTasklet("greet", func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
		_, err := tx.ExecContext(ctx, "INSERT INTO greeting VALUES (?)", sc.Params.String("who", "world"))
		sc.Counts.Write = 1
		return batch.Finished, err
	})
	eng, db, done := exampleEngine(&batch.Job{Name: "greeting", Flow: []batch.Node{hello, greet}})
	defer done()

	je, err := eng.Launch(context.Background(), "greeting", batch.Params{"who": {Value: "passbatch", Identifying: true}})
	if err != nil {
		panic(err)
	}
	d := waitFor(eng, je.JobExecutionID)
	var who string
	_ = db.NewRaw("SELECT who FROM greeting").Scan(context.Background(), &who)
	fmt.Println(d.Status, who)
	for _, s := range d.Steps {
		fmt.Println(s.StepName, s.Status, "wrote", s.WriteCount)
	}
	// Output:
	// COMPLETED passbatch
	// hello COMPLETED wrote 0
	// greet COMPLETED wrote 1
}

// A partitioned chunk step: the partitioner splits the key range, each
// partition reads by keyset and writes a chunk per transaction with its
// checkpoint. Partition executions are named as Spring Batch names them.
func Example_partitionedChunkStep() {
	type row struct {
		ID int64 `bun:"id"`
	}
	double := batch.NewChunk("double", batch.ChunkStep[row, row]{
		Reader: batch.KeysetReader[row]{
			Column: "id",
			Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
				return q.TableExpr("numbers").Column("id")
			},
			KeyOf: func(r row) int64 { return r.ID },
		},
		Partitioner: batch.KeyRangePartitioner("numbers", "id", 4, nil),
		ChunkSize:   100,
		Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, rows []row) error {
			ids := make([]int64, len(rows))
			for i, r := range rows {
				ids[i] = r.ID
			}
			_, err := tx.NewUpdate().Table("numbers").Set("n = n * 2").Where("id IN (?)", bun.In(ids)).Exec(ctx)
			return err
		},
	})
	eng, db, done := exampleEngine(&batch.Job{Name: "doubling", Flow: []batch.Node{double}})
	defer done()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE numbers (id bigint PRIMARY KEY, n bigint); INSERT INTO numbers SELECT i, i FROM generate_series(1, 1000) i"); err != nil {
		panic(err)
	}

	je, err := eng.Launch(ctx, "doubling", nil)
	if err != nil {
		panic(err)
	}
	d := waitFor(eng, je.JobExecutionID)
	var sum int64
	_ = db.NewRaw("SELECT sum(n) FROM numbers").Scan(ctx, &sum)
	fmt.Println(d.Status, "read", d.Steps[0].ReadCount, "wrote", d.Steps[0].WriteCount, "sum", sum)
	for _, p := range d.Steps[0].Partitions {
		fmt.Println(p.StepName, p.Status)
	}
	// Output:
	// COMPLETED read 1000 wrote 1000 sum 1001000
	// double:partition0 COMPLETED
	// double:partition1 COMPLETED
	// double:partition2 COMPLETED
	// double:partition3 COMPLETED
}

// A conditional flow: load fails, the flow goes to recover on FAILED and
// the job ends COMPLETED; a decider then routes by the exit status a step
// reported (Spring's .on("FAILED").to(recover) and JobExecutionDecider).
func Example_conditionalFlow() {
	load := batch.NewTasklet("load", func(context.Context, bun.Tx, *batch.StepContext) (batch.RepeatStatus, error) {
		return batch.Finished, errors.New("the feed is empty")
	}).On("FAILED", batch.To("recover"))
	recoverStep := batch.NewTasklet("recover", func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
		sc.ExitStatus = "RECOVERED"
		return batch.Finished, nil
	})
	route := batch.NewDecider("route", func(ctx context.Context, db bun.IDB, je *batch.JobExecution, last *batch.StepExecution) (string, error) {
		return strings.ToLower(last.ExitCode), nil
	}).On("recovered", batch.To("notify")).On("*", batch.End())
	notify := batch.NewTasklet("notify", func(context.Context, bun.Tx, *batch.StepContext) (batch.RepeatStatus, error) {
		return batch.Finished, nil
	})
	job := &batch.Job{Name: "feed", Flow: []batch.Node{load, recoverStep, route, notify}}
	eng, _, done := exampleEngine(job)
	defer done()

	je, err := eng.Launch(context.Background(), "feed", nil)
	if err != nil {
		panic(err)
	}
	d := waitFor(eng, je.JobExecutionID)
	fmt.Println(d.Status, d.ExitCode)
	for _, t := range d.Transitions {
		fmt.Println(t)
	}
	// Output:
	// COMPLETED COMPLETED
	// load -[FAILED]-> recover
	// route -[recovered]-> notify
}

// A chunk step partitioned by what its writer locks: line items are read
// by their order (a key that repeats), so a chunk holds whole orders and
// each order belongs to one partition; the writer adds each chunk's items
// to their orders' totals with one statement over the chunk's order
// range, and no two chunks ever lock the same order row. Four partitions
// run at once, whatever the fleet's size.
func Example_partitionByWhatTheWriterLocks() {
	type line struct {
		ID      int64 `bun:"id"`
		OrderID int64 `bun:"order_id"`
	}
	eligible := func(q *bun.SelectQuery, _ *batch.StepContext) *bun.SelectQuery { return q.Where("NOT counted") }
	step := batch.NewChunk("total", batch.ChunkStep[line, line]{
		Reader: batch.KeysetReader[line]{
			Column: "order_id", Then: "id", Group: true, // a chunk never splits an order
			Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
				return eligible(q.TableExpr("line").Column("id", "order_id"), sc)
			},
			KeyOf: func(l line) int64 { return l.OrderID },
			IDOf:  func(l line) int64 { return l.ID }, // names a skipped line
		},
		Partitioner: batch.KeyRangePartitioner("line", "order_id", 8, eligible),
		AtOnce:      4,
		ChunkSize:   100,
		Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []line) error {
			// Given the whole chunk, work on its key range with the reader's filter.
			_, err := tx.ExecContext(ctx, `WITH l AS (UPDATE line SET counted = true
					WHERE order_id BETWEEN ? AND ? AND NOT counted RETURNING order_id)
				UPDATE orders SET total = total + n FROM (SELECT order_id, count(*) AS n FROM l GROUP BY order_id) c
				WHERE orders.id = c.order_id`, sc.ChunkStart, sc.ChunkEnd)
			return err
		},
	})
	eng, db, done := exampleEngine(&batch.Job{Name: "totals", Flow: []batch.Node{step}})
	defer done()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE orders (id bigint PRIMARY KEY, total int NOT NULL DEFAULT 0);
		CREATE TABLE line (id bigserial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, counted bool NOT NULL DEFAULT false);
		INSERT INTO orders (id) SELECT generate_series(1, 300);
		INSERT INTO line (order_id) SELECT o FROM generate_series(1, 300) o, generate_series(1, 1 + o % 5)`); err != nil {
		panic(err)
	}
	je, err := eng.Launch(ctx, "totals", nil)
	if err != nil {
		panic(err)
	}
	d := waitFor(eng, je.JobExecutionID)
	var lines, total int
	_ = db.NewRaw("SELECT (SELECT count(*) FROM line), (SELECT sum(total) FROM orders)").Scan(ctx, &lines, &total)
	fmt.Println(d.Status, d.WriteCount == int64(lines), total == lines)
	// Output: COMPLETED true true
}
