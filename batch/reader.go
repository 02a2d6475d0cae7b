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

// KeysetReader is a Reader over a bun query paged by an integer key column:
// WHERE col >= from AND col < to ORDER BY col LIMIT n, never OFFSET — a
// writer that changes the query's filter column cannot make it skip rows.
type KeysetReader[I any] struct {
	// Column is the key column as written in SQL, e.g. "b.id".
	Column string
	// Query selects the model and the filter; the reader adds the key range,
	// order and limit.
	Query func(q *bun.SelectQuery, sc *StepContext) *bun.SelectQuery
	// KeyOf returns an item's key.
	KeyOf func(item I) int64
}

// Read implements Reader.
func (r KeysetReader[I]) Read(ctx context.Context, db bun.IDB, sc *StepContext, from, to int64, limit int) ([]I, error) {
	items := make([]I, 0, limit)
	q := r.Query(db.NewSelect(), sc).
		Where("? >= ? AND ? < ?", bun.Safe(r.Column), from, bun.Safe(r.Column), to).
		OrderExpr("? ASC", bun.Safe(r.Column)).
		Limit(int64(limit))
	if err := q.Scan(ctx, &items); err != nil {
		return nil, fmt.Errorf("keyset read %s from %d: %w", r.Column, from, err)
	}
	return items, nil
}

// Key implements Reader.
func (r KeysetReader[I]) Key(item I) int64 { return r.KeyOf(item) }
