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

// Partition counts a step may be given: at least MinPartitions when sized
// automatically, at most MaxPartitions however sized.
const (
	MinPartitions = 16
	MaxPartitions = 1024
)

// PartitionsPerSlot is how many partitions AutoPartitions plans per worker
// slot: several, so a slow partition does not leave the other slots idle at
// the end of a step.
const PartitionsPerSlot = 4

// AutoPartitionsCap is the most partitions AutoPartitions plans: each is a
// row in the job repository and a task, and past a few hundred the
// repository's writes cost more than the extra parallelism gains.
const AutoPartitionsCap = 256

// Sizer says how many partitions a partitioned step gets when neither the
// step nor the launch fixes it.
type Sizer func(ctx context.Context) int

// FixedPartitions sizes every step at n partitions.
func FixedPartitions(n int) Sizer {
	n = min(max(n, 1), MaxPartitions)
	return func(context.Context) int { return n }
}

// AutoPartitions sizes steps from the fleet: PartitionsPerSlot partitions
// for each worker slot live now (the sum of the concurrency of the asynq
// servers serving the partition queue, from asynq's server heartbeats),
// at least MinPartitions and at most AutoPartitionsCap. The count is read
// at most every 5 s; when it cannot be read, MinPartitions.
func AutoPartitions(insp *asynq.Inspector, log *slog.Logger) Sizer {
	if log == nil {
		log = slog.Default()
	}
	var mu sync.Mutex
	var at time.Time
	var last int
	return func(ctx context.Context) int {
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
		last, at = min(max(slots*PartitionsPerSlot, MinPartitions), AutoPartitionsCap), time.Now()
		return last
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
// ParamPartitions, else the engine's Sizer (Options.Partitions).
func (sc *StepContext) Partitions(ctx context.Context) int {
	if n, err := partitionsParam(sc.Params); err == nil && n > 0 {
		return n
	}
	if sc.sizer != nil {
		return sc.sizer(ctx)
	}
	return MinPartitions
}
