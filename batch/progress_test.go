package batch_test

import (
	"context"
	"testing"
	"time"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
)

// TestProgressOfARunningStep: while a partitioned step runs, its detail has
// items/s, an ETA and every partition with its range, holder and progress;
// the one partition that crawls is marked a straggler and no other is.
func TestProgressOfARunningStep(t *testing.T) {
	t.Parallel()
	const rows = 800 // 8 partitions of 100; ids 701..800 crawl
	slow := func(ctx context.Context, sc *batch.StepContext, it testjob.Item) (testjob.Item, error) {
		if it.ID > 700 {
			time.Sleep(80 * time.Millisecond)
		}
		return it, nil
	}
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: 8, ChunkSize: 5, Processor: slow}))
	defer b.startWorkers(t, 2, 4)()
	id := b.launch(t, "inc", "run=1")
	ctx := context.Background()
	var d *batch.ExecutionDetail
	deadline := time.Now().Add(40 * time.Second)
	for {
		var err error
		if d, err = b.engine.Execution(ctx, id); err != nil {
			t.Fatal(err)
		}
		if len(d.Steps) == 1 && len(d.Steps[0].Partitions) == 8 && d.Steps[0].Partitions[7].Straggler {
			break
		}
		if !batch.Running(d.Status) || time.Now().After(deadline) {
			t.Fatalf("the crawling partition was never marked a straggler (status %s): %+v", d.Status, d.Steps)
		}
		time.Sleep(200 * time.Millisecond)
	}
	s := d.Steps[0]
	if s.ItemsPerSecond == nil || *s.ItemsPerSecond <= 0 || s.ETASeconds == nil || *s.ETASeconds <= 0 {
		t.Fatalf("running step: items/s %v, ETA %v; want both > 0", s.ItemsPerSecond, s.ETASeconds)
	}
	for i, p := range s.Partitions {
		if p.RangeEnd-p.RangeStart != 100 || p.Key == "" || (i < 7 && p.Straggler) {
			t.Errorf("partition %d: %+v", i, p)
		}
		if i < 7 && (p.Status != batch.StatusCompleted || p.Progress != 1 || p.WorkerID == nil || p.ItemsPerSecond <= 0) {
			t.Errorf("fast partition %d: %s progress %v worker %v items/s %v", i, p.Status, p.Progress, p.WorkerID, p.ItemsPerSecond)
		}
	}
	if p := s.Partitions[7]; p.Status != batch.StatusStarted || p.Progress <= 0 || p.Progress >= 1 {
		t.Fatalf("the crawling partition: %s, progress %v; want STARTED part-way", p.Status, p.Progress)
	}
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	d, _ = b.engine.Execution(ctx, id)
	if s := d.Steps[0]; s.ETASeconds != nil || s.ItemsPerSecond == nil || s.Partitions[7].Progress != 1 || s.Partitions[7].Straggler {
		t.Fatalf("after the end: ETA %v items/s %v last partition %+v", s.ETASeconds, s.ItemsPerSecond, s.Partitions[7])
	}
}
