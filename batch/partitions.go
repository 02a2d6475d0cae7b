package batch

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
)

// ParamPartitions is the launch parameter that sets how many partitions
// each partitioned step of the execution gets ("partitions=64"). It is
// never identifying: the same business run split otherwise is the same
// job instance.
const ParamPartitions = "partitions"

// Partition counts a step may be given: at most MaxPartitions however
// sized.
const MaxPartitions = 1024

// MinPartitions is the count a step gets when the fleet's size cannot be
// read.
const MinPartitions = 16

// PartitionsPerSlot is how many partitions AutoPartitions plans per worker
// slot: several, so a slow partition does not leave the other slots idle at
// the end of a step.
const PartitionsPerSlot = 4

// AutoPartitionsCap is the most partitions AutoPartitions plans: each is a
// row in the job repository and a task, and past a few hundred the
// repository's writes cost more than the extra parallelism gains.
const AutoPartitionsCap = 256

// DefaultMinPartitionRows is AutoPartitions' default fewest rows per
// partition: a partition costs a task, a claim, a few repository writes
// and a hand-off, about what a few thousand rows of work cost (measured in
// bench/results.md: expire-passes' 9.9k rows ran 0.09× the statement in
// tens of partitions).
const DefaultMinPartitionRows = 5000

// Sizer says how many partitions a partitioned step gets when neither the
// step nor the launch fixes it, given how many rows the step will read
// (rows < 0: not known).
type Sizer func(ctx context.Context, rows int64) int

// FixedPartitions sizes every step at n partitions, whatever its rows.
func FixedPartitions(n int) Sizer {
	n = min(max(n, 1), MaxPartitions)
	return func(context.Context, int64) int { return n }
}

// AutoPartitions sizes steps to the work and the fleet: PartitionsPerSlot
// partitions for each worker slot live now (the sum of the concurrency of
// the asynq servers serving the partition queue, from asynq's server
// heartbeats), but no more than one per minRows rows (default
// DefaultMinPartitionRows), at least one and at most AutoPartitionsCap. A
// 10k-row step gets two partitions, a 10M-row step on a large fleet
// hundreds. The slot count is read at most every 5 s; when it cannot be
// read (or no server is listed yet), MinPartitions is the fleet's share.
func AutoPartitions(insp *asynq.Inspector, minRows int64, log *slog.Logger) Sizer {
	if log == nil {
		log = slog.Default()
	}
	if minRows <= 0 {
		minRows = DefaultMinPartitionRows
	}
	var mu sync.Mutex
	var at time.Time
	var last int
	fleet := func(ctx context.Context) int {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) < 5*time.Second && last > 0 {
			return last
		}
		slots, err := liveSlots(insp)
		if err != nil {
			log.WarnContext(ctx, "partitions: cannot count the worker slots; using the floor", "err", err, "partitions", MinPartitions)
			return MinPartitions
		}
		if slots == 0 {
			return MinPartitions // asynq has not listed the fleet yet (its heartbeats come every few seconds)
		}
		last, at = min(slots*PartitionsPerSlot, AutoPartitionsCap), time.Now()
		return last
	}
	return func(ctx context.Context, rows int64) int {
		n := fleet(ctx)
		if rows >= 0 {
			n = min(n, int(max((rows+minRows-1)/minRows, 1)))
		}
		return n
	}
}

// liveSlots sums the concurrency of the asynq servers that serve the
// partition queue.
func liveSlots(insp *asynq.Inspector) (int, error) {
	servers, err := insp.Servers()
	if err != nil {
		return 0, fmt.Errorf("list asynq servers: %w", err)
	}
	n := 0
	for _, s := range servers {
		if _, ok := s.Queues[QueuePartition]; ok && s.Status == "active" {
			n += s.Concurrency
		}
	}
	return n, nil
}

// partitionsParam reads and checks ParamPartitions: 0 when absent.
func partitionsParam(p Params) (int, error) {
	v, ok := p[ParamPartitions]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v.Value)
	if err != nil || n < 1 || n > MaxPartitions {
		return 0, fmt.Errorf("%w: %s: want a whole number from 1 to %d, got %q", ErrInvalidParams, ParamPartitions, MaxPartitions, v.Value)
	}
	return n, nil
}

// Partitions is how many partitions this step is split into: the launch's
// ParamPartitions, else the engine's Sizer (Options.Partitions) for rows
// rows (rows < 0: not known).
//
// The engine's count is at most PartitionsPerSlot for each partition the
// step runs at once (ChunkStep.AtOnce): more would only wait their turn,
// each costing a task, a claim and a hand-off (with 152 partitions instead
// of 40, use-passes ran 11% slower at 4 at once, bench/results.md).
func (sc *StepContext) Partitions(ctx context.Context, rows int64) int {
	if n, err := partitionsParam(sc.Params); err == nil && n > 0 {
		return n
	}
	n := MinPartitions
	if sc.sizer != nil {
		n = sc.sizer(ctx, rows)
	}
	if sc.atOnce > 0 && !sc.fixed {
		n = min(n, PartitionsPerSlot*sc.atOnce)
	}
	return n
}
