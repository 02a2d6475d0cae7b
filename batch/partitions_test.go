package batch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
)

// partitionCount is how many partitions step inc of execution id has.
func partitionCount(t *testing.T, b *bundle, id int64) int {
	t.Helper()
	return *topStep(t, b.db, id, "inc").PartitionsTotal
}

// TestPartitionsParam: partitions=N sizes every partitioned step of that
// launch, is not identifying, and is checked.
func TestPartitionsParam(t *testing.T) {
	t.Parallel()
	const rows = 2000
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: -1, ChunkSize: 20}))
	defer b.startWorkers(t, 2, 4)()
	id := b.launch(t, "inc", "run=1", "partitions=64")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	if n := partitionCount(t, b, id); n != 64 {
		t.Fatalf("partitions=64 gave %d partitions", n)
	}
	var ident bool
	if err := b.db.NewRaw("SELECT identifying = 'Y' FROM batch_job_execution_params WHERE job_execution_id = ? AND parameter_name = 'partitions'", id).
		Scan(context.Background(), &ident); err != nil || ident {
		t.Fatalf("partitions parameter identifying=%v (%v), want a non-identifying parameter", ident, err)
	}
	p, _ := batch.ParseParams([]string{"run=1", "partitions=8"})
	if _, err := b.engine.Launch(context.Background(), "inc", p); !errors.Is(err, batch.ErrAlreadyComplete) {
		t.Fatalf("the same run with other partitions: %v, want ErrAlreadyComplete (the same instance)", err)
	}
	if _, err := b.db.ExecContext(context.Background(), "UPDATE t SET n = 0"); err != nil {
		t.Fatal(err)
	}
	id2 := b.launch(t, "inc", "run=2")
	requireStatus(t, b.wait(t, id2, time.Minute), batch.StatusCompleted)
	if n := partitionCount(t, b, id2); n != batch.MinPartitions {
		t.Fatalf("no partitions parameter gave %d partitions, want the engine's default %d", n, batch.MinPartitions)
	}
	for _, bad := range []string{"0", "-3", "many", "1025"} {
		p, _ := batch.ParseParams([]string{"run=3", "partitions=" + bad})
		if _, err := b.engine.Launch(context.Background(), "inc", p); !errors.Is(err, batch.ErrInvalidParams) {
			t.Errorf("partitions=%s: %v, want ErrInvalidParams", bad, err)
		}
	}
}

// TestAutoPartitions: AutoPartitions plans PartitionsPerSlot partitions per
// live worker slot (MinPartitions while it sees none), at most
// AutoPartitionsCap, from asynq's server heartbeats, and no more than one
// per minimum of rows.
func TestAutoPartitions(t *testing.T) {
	t.Parallel()
	const rows = 3000
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: -1, ChunkSize: 20}))
	opt, _ := asynq.ParseRedisURI(b.redis.URL)
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	ctx := context.Background()
	if n := batch.AutoPartitions(insp, 20, quietLogger())(ctx, rows); n != batch.MinPartitions {
		t.Fatalf("no workers: %d partitions, want the floor %d", n, batch.MinPartitions)
	}
	if n := batch.AutoPartitions(insp, 1000, quietLogger())(ctx, rows); n != 3 {
		t.Fatalf("%d rows, at least 1000 a partition: %d partitions, want 3", rows, n)
	}
	if n := batch.AutoPartitions(insp, 1000, quietLogger())(ctx, 0); n != 1 {
		t.Fatalf("no rows: %d partitions, want 1", n)
	}
	eng := batch.New(b.db.DB, b.client, b.engine.Registry(), batch.Options{Logger: quietLogger(), Partitions: batch.AutoPartitions(insp, 20, quietLogger()),
		PartitionsAtOnce: 100})
	var stops []func()
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	for _, c := range []int{3, 10} {
		w := eng.NewWorker(opt, batch.WorkerOptions{Concurrency: c, Logger: quietLogger(), ShutdownTimeout: 5 * time.Second})
		if err := w.Start(ctx, nil); err != nil {
			t.Fatal(err)
		}
		stops = append(stops, func() { w.Stop(context.Background()) })
	}
	want := 13 * batch.PartitionsPerSlot
	waitSizer(t, insp, want)
	je, err := eng.Launch(ctx, "inc", batch.Params{"run": {Value: "1", Identifying: true}})
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, je.JobExecutionID, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	if n := partitionCount(t, b, je.JobExecutionID); n != want {
		t.Fatalf("workers with 3 + 10 slots: %d partitions, want %d", n, want)
	}
	// Two partitions at once: no more than 4 per partition running.
	capped := batch.New(b.db.DB, b.client, b.engine.Registry(), batch.Options{Logger: quietLogger(), Partitions: batch.AutoPartitions(insp, 20, quietLogger()),
		PartitionsAtOnce: 2})
	if _, err := b.db.ExecContext(ctx, "UPDATE t SET n = 0"); err != nil {
		t.Fatal(err)
	}
	for _, s := range stops {
		s()
	}
	stops = nil
	cw := capped.NewWorker(opt, batch.WorkerOptions{Concurrency: 13, Logger: quietLogger(), ShutdownTimeout: 5 * time.Second})
	if err := cw.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	stops = append(stops, func() { cw.Stop(context.Background()) })
	je, err = capped.Launch(ctx, "inc", batch.Params{"run": {Value: "2", Identifying: true}})
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, je.JobExecutionID, time.Minute), batch.StatusCompleted)
	if n := partitionCount(t, b, je.JobExecutionID); n != 2*batch.PartitionsPerSlot {
		t.Fatalf("2 partitions at once: %d partitions, want %d", n, 2*batch.PartitionsPerSlot)
	}
	big := eng.NewWorker(opt, batch.WorkerOptions{Concurrency: 100, Logger: quietLogger(), ShutdownTimeout: 5 * time.Second})
	if err := big.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	stops = append(stops, func() { big.Stop(context.Background()) })
	waitSizer(t, insp, batch.AutoPartitionsCap)
}

// waitSizer waits until a fresh AutoPartitions says want (asynq's server
// heartbeats land within a few seconds of a start).
func waitSizer(t *testing.T, insp *asynq.Inspector, want int) {
	t.Helper()
	var n int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n = batch.AutoPartitions(insp, 1, quietLogger())(context.Background(), 1<<40); n == want {
			return
		}
	}
	t.Fatalf("AutoPartitions says %d, want %d", n, want)
}
