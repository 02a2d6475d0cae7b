package batch

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Reader reads a chunk: up to limit items whose key is in [from, to), in
// ascending key order. It runs inside the chunk's transaction.
type Reader[I any] interface {
	Read(ctx context.Context, db bun.IDB, sc *StepContext, from, to int64, limit int) ([]I, error)
	// Key is the item's key: the column the reader pages on (usually the id).
	Key(item I) int64
}

// GroupedReader is implemented by a Reader whose key may repeat across
// items (bookings read by their pass): the engine never splits one key's
// items between two chunks, so a chunk's checkpoint (its last key) always
// ends a whole group, and a group larger than the chunk size is read whole
// in one chunk. A step partitioned by that key then gives every key to one
// partition and one chunk: two chunks never write rows of the same group,
// so they never wait on each other's row locks.
type GroupedReader interface {
	// Grouped reports whether the reader's keys may repeat.
	Grouped() bool
}

// KeysetReader is a Reader over a bun query paged by an integer key column:
// WHERE col >= from AND col < to ORDER BY col LIMIT n, never OFFSET — a
// writer that changes the query's filter column cannot make it skip rows.
type KeysetReader[I any] struct {
	// Column is the key column as written in SQL, e.g. "b.id".
	Column string
	// Group, when set, says the key may repeat (see GroupedReader); Then
	// orders the items of one key (e.g. "id"). Default false.
	Group bool
	Then  string
	// Query selects the model and the filter; the reader adds the key range,
	// order and limit.
	Query func(q *bun.SelectQuery, sc *StepContext) *bun.SelectQuery
	// KeyOf returns an item's key.
	KeyOf func(item I) int64
	// IDOf returns an item's own id, which names it in skip records when
	// the key is shared by a group. Default KeyOf.
	IDOf func(item I) int64
}

// Read implements Reader.
func (r KeysetReader[I]) Read(ctx context.Context, db bun.IDB, sc *StepContext, from, to int64, limit int) ([]I, error) {
	items := make([]I, 0, min(limit, 1<<14))
	q := r.Query(db.NewSelect(), sc).
		Where("? >= ? AND ? < ?", bun.Safe(r.Column), from, bun.Safe(r.Column), to).
		OrderExpr("? ASC", bun.Safe(r.Column)).
		Limit(int64(limit))
	if r.Then != "" {
		q = q.OrderExpr("? ASC", bun.Safe(r.Then))
	}
	if err := q.Scan(ctx, &items); err != nil {
		return nil, fmt.Errorf("keyset read %s from %d: %w", r.Column, from, err)
	}
	return items, nil
}

// Key implements Reader.
func (r KeysetReader[I]) Key(item I) int64 { return r.KeyOf(item) }

// ItemID is the item's own id (IDOf, else its key).
func (r KeysetReader[I]) ItemID(item I) int64 {
	if r.IDOf != nil {
		return r.IDOf(item)
	}
	return r.KeyOf(item)
}

// Grouped implements GroupedReader.
func (r KeysetReader[I]) Grouped() bool { return r.Group }
