package batch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// Processor turns a read item into the item to write. Return ErrFiltered to
// drop it (counted in filter_count). It runs outside any transaction and
// may run concurrently for the items of a chunk (ChunkStep.Concurrency).
type Processor[I, O any] func(ctx context.Context, sc *StepContext, item I) (O, error)

// Writer writes a chunk's items inside the chunk transaction, set-based: one
// statement for the chunk, not one per item. On a skippable error the engine
// calls it again with one item at a time to isolate the bad one. It must
// make no network call: the transaction holds row locks.
type Writer[O any] func(ctx context.Context, tx bun.Tx, sc *StepContext, items []O) error

// Emitter hands a chunk's processed items to the outside world (a file in
// storage, a webhook) outside any transaction, before the chunk's
// transaction records them.
type Emitter[O any] func(ctx context.Context, sc *StepContext, items []O) error

// ChunkStep declares a reader → processor → writer step.
//
// A chunk runs in two phases: read, process and Emit outside any
// transaction; then one short transaction fences the partition, writes,
// records skips, counters and the checkpoint. If the fence finds that
// another delivery took the partition, the processed chunk is discarded;
// what Processor and Emit sent out must then be idempotent (a part file
// named by the chunk's first key, a notification's idempotency key).
type ChunkStep[I, O any] struct {
	// Reader reads items by key (see KeysetReader). Required.
	Reader Reader[I]
	// Processor maps items; nil passes items through (I must be O).
	Processor Processor[I, O]
	// Emit, when set, delivers each chunk's processed items outside the
	// transaction (see Emitter), with the step's RetryPolicy. Default nil.
	Emit Emitter[O]
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
	// AtOnce is how many of the step's partitions run at once across the
	// whole fleet; the others wait their turn (not even queued), and each
	// partition that ends queues the next. Default the engine's
	// (Options.PartitionsAtOnce). More workers then never means more
	// transactions than the database serves well.
	AtOnce int
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
	return &Step{name: name, chunk: &c, part: part, skip: c.Skip, retry: c.Retry, onSkip: c.OnSkip, atOnce: c.AtOnce}
}

// chunkRunner is a ChunkStep with its item types erased.
type chunkRunner interface {
	// prepare reads, processes and emits the chunk from key from, outside
	// any transaction.
	prepare(ctx context.Context, db bun.IDB, sc *StepContext, from, skipsSoFar int64) (*chunk, error)
	// write writes a prepared chunk in tx item by item where a write
	// fails (the slow path, under savepoints). With mayRetry, a write error
	// the RetryPolicy retries is returned as *retryWrite for the caller to
	// roll back, wait and try again.
	write(ctx context.Context, tx bun.Tx, sc *StepContext, c *chunk, skipsSoFar int64, mayRetry bool) error
	// writeAll writes every item of a prepared chunk at once, with no
	// savepoint (the fast path). Its error says what to do next: a
	// *retryWrite (roll back, wait, try again), an *isolateWrite (roll
	// back, take the slow path), infrastructure, or a *stepFailure.
	writeAll(ctx context.Context, tx bun.Tx, sc *StepContext, c *chunk, skipsSoFar int64, mayRetry bool) error
	retryPolicy() RetryPolicy
}

type skipRecord struct {
	key   int64
	phase string
	err   error
}

// chunk is one chunk of a partition: what was read and processed, then what
// the write did.
type chunk struct {
	read, written, filtered  int64
	processSkips, writeSkips int64
	lastKey                  int64
	exhausted                bool // fewer items than a chunk: the partition is done
	skips                    []skipRecord
	items                    any   // []O to write
	toWrite                  int64 // len(items)
	keys                     []int64
	// readTime, processTime (Emit included) and writeTime are what the
	// chunk spent in each phase, for the metrics.
	readTime, processTime, writeTime time.Duration
}

// isolateWrite is a write error to isolate item by item: the chunk is
// written again on the slow path.
type isolateWrite struct{ err error }

func (r *isolateWrite) Error() string { return r.err.Error() }
func (r *isolateWrite) Unwrap() error { return r.err }

// retryWrite is a write error the step's RetryPolicy retries.
type retryWrite struct{ err error }

func (r *retryWrite) Error() string { return r.err.Error() }
func (r *retryWrite) Unwrap() error { return r.err }

// stepFailure is a business failure of the step (not an infrastructure
// fault): the step ends FAILED instead of the task being retried.
type stepFailure struct{ err error }

func (f *stepFailure) Error() string { return f.err.Error() }
func (f *stepFailure) Unwrap() error { return f.err }

func (c *ChunkStep[I, O]) retryPolicy() RetryPolicy { return c.Retry }

func (c *ChunkStep[I, O]) prepare(ctx context.Context, db bun.IDB, sc *StepContext, from, skipsSoFar int64) (*chunk, error) {
	start := time.Now()
	items, err := c.Reader.Read(ctx, db, sc, from, sc.Range.End, c.ChunkSize)
	readTime := time.Since(start)
	if err != nil {
		if isInfra(ctx, err) {
			return nil, err
		}
		return nil, &stepFailure{fmt.Errorf("read from key %d: %w", from, err)}
	}
	exhausted := len(items) < c.ChunkSize
	if g, ok := c.Reader.(GroupedReader); ok && g.Grouped() && !exhausted {
		if items, err = c.wholeGroups(ctx, db, sc, items); err != nil {
			return nil, err
		}
		readTime = time.Since(start)
	}
	out := &chunk{read: int64(len(items)), exhausted: exhausted, lastKey: from - 1, readTime: readTime}
	if len(items) == 0 {
		return out, nil
	}
	defer func() { out.processTime = time.Since(start) - readTime }()
	out.lastKey = c.Reader.Key(items[len(items)-1])
	results, err := c.process(ctx, sc, items)
	if err != nil {
		return nil, err
	}
	keep := make([]O, 0, len(items))
	for i, r := range results {
		key := itemID(c.Reader, items[i])
		switch {
		case r.err == nil:
			keep = append(keep, r.o)
			out.keys = append(out.keys, key)
		case errors.Is(r.err, ErrFiltered):
			out.filtered++
		case c.Skip.canSkip(r.err, skipsSoFar+int64(len(out.skips))):
			out.processSkips++
			out.skips = append(out.skips, skipRecord{key, "process", r.err})
		case isInfra(ctx, r.err):
			return nil, r.err
		default:
			return nil, &stepFailure{fmt.Errorf("process item %d: %w", key, r.err)}
		}
	}
	out.items, out.toWrite = keep, int64(len(keep))
	if c.Emit != nil && len(keep) > 0 {
		if err := c.withRetry(ctx, func() error { return c.Emit(ctx, sc, keep) }); err != nil {
			if isInfra(ctx, err) {
				return nil, err
			}
			return nil, &stepFailure{fmt.Errorf("emit chunk from key %d: %w", from, err)}
		}
	}
	return out, nil
}

// itemID is an item's own identity, for its skip record: the reader's
// ItemID when it has one (a grouped reader's key is shared), else its key.
func itemID[I any](r Reader[I], item I) int64 {
	if ir, ok := r.(interface{ ItemID(I) int64 }); ok {
		return ir.ItemID(item)
	}
	return r.Key(item)
}

// wholeGroups trims a full chunk of a grouped reader to whole keys: the
// items of its last key may go on in the next read, so they are left to
// the next chunk; when the chunk holds one key only, that key is read
// whole.
func (c *ChunkStep[I, O]) wholeGroups(ctx context.Context, db bun.IDB, sc *StepContext, items []I) ([]I, error) {
	last := c.Reader.Key(items[len(items)-1])
	i := len(items) - 1
	for i >= 0 && c.Reader.Key(items[i]) == last {
		i--
	}
	if i >= 0 {
		return items[:i+1], nil
	}
	all, err := c.Reader.Read(ctx, db, sc, last, last+1, math.MaxInt32)
	if err != nil {
		if isInfra(ctx, err) {
			return nil, err
		}
		return nil, &stepFailure{fmt.Errorf("read key %d whole: %w", last, err)}
	}
	return all, nil
}

type processed[O any] struct {
	o   O
	err error
}

// process runs the processor over items, Concurrency at a time, keeping
// read order.
func (c *ChunkStep[I, O]) process(ctx context.Context, sc *StepContext, items []I) ([]processed[O], error) {
	results := make([]processed[O], len(items))
	if c.Processor == nil {
		for i, it := range items {
			o, ok := any(it).(O)
			if !ok {
				return nil, &stepFailure{fmt.Errorf("batch: step %s has no processor and its reader's items are not the writer's type", sc.StepName)}
			}
			results[i] = processed[O]{o: o}
		}
		return results, nil
	}
	sem := make(chan struct{}, c.Concurrency)
	var wg sync.WaitGroup
	for i := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			var o O
			err := c.withRetry(ctx, func() error {
				var err error
				o, err = c.Processor(ctx, sc, items[i])
				return err
			})
			results[i] = processed[O]{o, err}
		}(i)
	}
	wg.Wait()
	return results, nil
}

// withRetry calls fn until it succeeds, fails for good or the RetryPolicy
// gives up, waiting its backoff between attempts. It runs outside any
// transaction.
func (c *ChunkStep[I, O]) withRetry(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || errors.Is(err, ErrFiltered) || !c.Retry.retryable(err) || attempt >= c.Retry.Limit {
			return err
		}
		if err := sleep(ctx, c.Retry.backoff(attempt+1)); err != nil {
			return err
		}
	}
}

func (c *ChunkStep[I, O]) writeAll(ctx context.Context, tx bun.Tx, sc *StepContext, ch *chunk, skipsSoFar int64, mayRetry bool) error {
	keep, _ := ch.items.([]O)
	ch.written, ch.writeSkips = 0, 0
	if len(keep) == 0 {
		return nil
	}
	err := c.Writer(ctx, tx, sc, keep)
	switch {
	case err == nil:
		ch.written = int64(len(keep))
		return nil
	case mayRetry && c.Retry.retryable(err):
		return &retryWrite{err}
	case c.Skip.canSkip(err, skipsSoFar+int64(len(ch.skips))):
		return &isolateWrite{err}
	case isInfra(ctx, err):
		return err
	}
	return &stepFailure{fmt.Errorf("write chunk: %w", err)}
}

func (c *ChunkStep[I, O]) write(ctx context.Context, tx bun.Tx, sc *StepContext, ch *chunk, skipsSoFar int64, mayRetry bool) error {
	keep, _ := ch.items.([]O)
	ch.written, ch.writeSkips = 0, 0
	ch.skips = ch.skips[:len(ch.skips)-countPhase(ch.skips, "write")]
	if len(keep) == 0 {
		return nil
	}
	skipped := func() int64 { return skipsSoFar + int64(len(ch.skips)) }
	err := c.writeSavepoint(ctx, tx, sc, keep)
	switch {
	case err == nil:
		ch.written = int64(len(keep))
		return nil
	case mayRetry && c.Retry.retryable(err):
		return &retryWrite{err}
	case !c.Skip.canSkip(err, skipped()):
		if isInfra(ctx, err) {
			return err
		}
		return &stepFailure{fmt.Errorf("write chunk: %w", err)}
	}
	// Isolate the bad items: write them one at a time.
	for i := range keep {
		err := c.writeSavepoint(ctx, tx, sc, keep[i:i+1])
		switch {
		case err == nil:
			ch.written++
		case c.Skip.canSkip(err, skipped()):
			ch.writeSkips++
			ch.skips = append(ch.skips, skipRecord{ch.keys[i], "write", err})
		case isInfra(ctx, err):
			return err
		default:
			return &stepFailure{fmt.Errorf("write item %d: %w", ch.keys[i], err)}
		}
	}
	return nil
}

// countPhase counts the skips of phase at the end of skips (a retried write
// drops the write skips of its earlier attempt).
func countPhase(skips []skipRecord, phase string) int {
	n := 0
	for i := len(skips) - 1; i >= 0 && skips[i].phase == phase; i-- {
		n++
	}
	return n
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
