package batch

import (
	"context"
	"fmt"
	"math"

	"github.com/uptrace/bun"
)

// Range is a partition's key range [Start, End).
type Range struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// FullRange covers every key.
var FullRange = Range{Start: math.MinInt64, End: math.MaxInt64}

// Partitioner divides a chunk step's keys into ranges, one partition each.
// Return many more ranges than workers so that work balances. It runs when
// the step starts (not on restart, which reuses the first execution's ranges).
type Partitioner func(ctx context.Context, db bun.IDB, sc *StepContext) ([]Range, error)

// KeyRangePartitioner splits [min, max] of column over the rows that filter
// selects into up to n equal ranges; n < 1 leaves the count to the launch
// and the engine (StepContext.Partitions), which size it by the rows the
// filter selects (counted in the same statement; with n given nothing is
// counted, so an indexed column with no filter costs two index probes).
// No rows: no partitions (the step completes at once with zero counts).
//
// column is the key the step's reader pages on; it need not be unique (see
// GroupedReader): partition by what the writer locks, so that two
// partitions never wait on each other's row locks.
func KeyRangePartitioner(table, column string, n int, filter func(q *bun.SelectQuery, sc *StepContext) *bun.SelectQuery) Partitioner {
	return func(ctx context.Context, db bun.IDB, sc *StepContext) ([]Range, error) {
		var bounds struct {
			Min  *int64 `bun:"min"`
			Max  *int64 `bun:"max"`
			Rows int64  `bun:"rows"`
		}
		q := db.NewSelect().TableExpr(table).ColumnExpr("min(?) AS min, max(?) AS max", bun.Safe(column), bun.Safe(column))
		if n < 1 {
			q = q.ColumnExpr("count(*) AS rows")
		}
		if filter != nil {
			q = filter(q, sc)
		}
		if err := q.Scan(ctx, &bounds); err != nil {
			return nil, fmt.Errorf("partition %s by %s: %w", table, column, err)
		}
		if bounds.Min == nil {
			return nil, nil
		}
		n := n
		if n < 1 {
			n = sc.Partitions(ctx, bounds.Rows)
		}
		return SplitRange(*bounds.Min, *bounds.Max+1, n), nil
	}
}

// SplitRange divides [start, end) into up to n contiguous ranges of nearly
// equal width.
func SplitRange(start, end int64, n int) []Range {
	width := end - start
	if width <= 0 {
		return nil
	}
	if int64(n) > width {
		n = int(width)
	}
	out := make([]Range, 0, n)
	step := width / int64(n)
	rem := width % int64(n)
	s := start
	for i := 0; i < n; i++ {
		w := step
		if int64(i) < rem {
			w++
		}
		out = append(out, Range{Start: s, End: s + w})
		s += w
	}
	return out
}
