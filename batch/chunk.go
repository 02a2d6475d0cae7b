package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// Processor turns a read item into the item to write. Return ErrFiltered to
// drop it (counted in filter_count). It may run concurrently for the items
// of a chunk (ChunkStep.Concurrency), so it must not use the transaction.
type Processor[I, O any] func(ctx context.Context, sc *StepContext, item I) (O, error)

// Writer writes a chunk's items inside the chunk transaction, set-based: one
// statement for the chunk, not one per item. On a skippable error the engine
// calls it again with one item at a time to isolate the bad one.
type Writer[O any] func(ctx context.Context, tx bun.Tx, sc *StepContext, items []O) error

// ChunkStep declares a reader → processor → writer step.
type ChunkStep[I, O any] struct {
	// Reader reads items by key (see KeysetReader). Required.
	Reader Reader[I]
	// Processor maps items; nil passes items through (I must be O).
	Processor Processor[I, O]
	// Writer writes a chunk. Required.
	Writer Writer[O]
	// ChunkSize is the items per transaction. Default 500.
	ChunkSize int
	// Concurrency bounds processor calls running at once within a chunk;
	// the writer still sees items in read order. Default 1.
	Concurrency int
	// Partitioner divides the keys into partitions, each its own task. Nil:
	// one partition over every key.
	Partitioner Partitioner
	// Skip and Retry are the step's fault policies.
	Skip  SkipPolicy
	Retry RetryPolicy
	// OnSkip, when set, runs in the chunk transaction after the chunk's
	// skipped items are recorded (Spring's SkipListener), e.g. to mark them
	// in the domain so they are not read again.
	OnSkip func(ctx context.Context, tx bun.Tx, sc *StepContext, skipped []SkippedItem) error
}

// SkippedItem is an item a chunk skipped: its key, the phase (process or
// write) and the error.
type SkippedItem struct {
	Key   int64
	Phase string
	Err   error
}

// NewChunk declares a chunk step.
func NewChunk[I, O any](name string, c ChunkStep[I, O]) *Step {
	if c.Reader == nil || c.Writer == nil {
		panic(fmt.Sprintf("batch: chunk step %q needs a Reader and a Writer", name))
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 500
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	part := c.Partitioner
	if part == nil {
		part = func(context.Context, bun.IDB, *StepContext) ([]Range, error) { return []Range{FullRange}, nil }
	}
	return &Step{name: name, chunk: &c, part: part, skip: c.Skip, retry: c.Retry, onSkip: c.OnSkip}
}

// chunkRunner is a ChunkStep with its item types erased.
type chunkRunner interface {
	run(ctx context.Context, tx bun.Tx, sc *StepContext, from int64, skipsSoFar int64) (*chunkOutcome, error)
}

type skipRecord struct {
	key   int64
	phase string
	err   error
}

// chunkOutcome is what one chunk did.
type chunkOutcome struct {
	read, written, filtered  int64
	processSkips, writeSkips int64
	lastKey                  int64
	exhausted                bool // fewer items than a chunk: the partition is done
	skips                    []skipRecord
	retries                  int64 // write attempts rolled back and retried
}

// stepFailure is a business failure of the step (not an infrastructure
// fault): the step ends FAILED instead of the task being retried.
type stepFailure struct{ err error }

func (f *stepFailure) Error() string { return f.err.Error() }
func (f *stepFailure) Unwrap() error { return f.err }

func (c *ChunkStep[I, O]) run(ctx context.Context, tx bun.Tx, sc *StepContext, from int64, skipsSoFar int64) (*chunkOutcome, error) {
	items, err := c.Reader.Read(ctx, tx, sc, from, sc.Range.End, c.ChunkSize)
	if err != nil {
		return nil, err // infrastructure: the task is retried
	}
	out := &chunkOutcome{read: int64(len(items)), exhausted: len(items) < c.ChunkSize, lastKey: from - 1}
	if len(items) == 0 {
		return out, nil
	}
	out.lastKey = c.Reader.Key(items[len(items)-1])

	// Process, in parallel when asked, keeping read order.
	type result struct {
		o   O
		err error
	}
	results := make([]result, len(items))
	if c.Processor == nil {
		for i, it := range items {
			o, ok := any(it).(O)
			if !ok {
				return nil, fmt.Errorf("batch: step %s has no processor and its reader's items are not the writer's type", sc.StepName)
			}
			results[i] = result{o: o}
		}
	} else {
		sem := make(chan struct{}, c.Concurrency)
		var wg sync.WaitGroup
		for i := range items {
			sem <- struct{}{}
			wg.Add(1)
			go func(i int) {
				defer func() { <-sem; wg.Done() }()
				o, err := c.processWithRetry(ctx, sc, items[i])
				results[i] = result{o, err}
			}(i)
		}
		wg.Wait()
	}
	keep := make([]O, 0, len(items))
	keys := make([]int64, 0, len(items))
	for i, r := range results {
		switch {
		case r.err == nil:
			keep = append(keep, r.o)
			keys = append(keys, c.Reader.Key(items[i]))
		case errors.Is(r.err, ErrFiltered):
			out.filtered++
		case c.Skip.canSkip(r.err, skipsSoFar+int64(len(out.skips))):
			out.processSkips++
			out.skips = append(out.skips, skipRecord{c.Reader.Key(items[i]), "process", r.err})
		case isInfra(r.err):
			return nil, r.err
		default:
			return nil, &stepFailure{fmt.Errorf("process item %d: %w", c.Reader.Key(items[i]), r.err)}
		}
	}
	if len(keep) == 0 {
		return out, nil
	}

	// Write the chunk; retry transient errors; isolate a bad item.
	for attempt := 0; ; attempt++ {
		err := c.writeSavepoint(ctx, tx, sc, keep)
		if err == nil {
			out.written += int64(len(keep))
			return out, nil
		}
		if isInfra(err) {
			return nil, err
		}
		if c.Retry.retryable(err) && attempt < c.Retry.Limit {
			out.retries++
			if err := sleep(ctx, c.Retry.backoff(attempt+1)); err != nil {
				return nil, err
			}
			continue
		}
		if !c.Skip.canSkip(err, skipsSoFar+int64(len(out.skips))) {
			return nil, &stepFailure{fmt.Errorf("write chunk: %w", err)}
		}
		break
	}
	for i := range keep {
		err := c.writeSavepoint(ctx, tx, sc, keep[i:i+1])
		if err == nil {
			out.written++
			continue
		}
		if isInfra(err) {
			return nil, err
		}
		if !c.Skip.canSkip(err, skipsSoFar+int64(len(out.skips))) {
			return nil, &stepFailure{fmt.Errorf("write item %d: %w", keys[i], err)}
		}
		out.writeSkips++
		out.skips = append(out.skips, skipRecord{keys[i], "write", err})
	}
	return out, nil
}

func (c *ChunkStep[I, O]) processWithRetry(ctx context.Context, sc *StepContext, it I) (O, error) {
	for attempt := 0; ; attempt++ {
		o, err := c.Processor(ctx, sc, it)
		if err == nil || errors.Is(err, ErrFiltered) || !c.Retry.retryable(err) || attempt >= c.Retry.Limit {
			return o, err
		}
		if err := sleep(ctx, c.Retry.backoff(attempt+1)); err != nil {
			return o, err
		}
	}
}

// writeSavepoint runs the writer under a savepoint so a failed write can be
// undone without losing the chunk transaction.
func (c *ChunkStep[I, O]) writeSavepoint(ctx context.Context, tx bun.Tx, sc *StepContext, items []O) error {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT batch_write"); err != nil {
		return err
	}
	if err := c.Writer(ctx, tx, sc, items); err != nil {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT batch_write"); rerr != nil {
			return fmt.Errorf("%w (and rollback to savepoint: %v)", err, rerr)
		}
		return err
	}
	_, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT batch_write")
	return err
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
