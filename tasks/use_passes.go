package tasks

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
)

// ErrNoUsesLeft is why use-passes skips a booking whose pass has no uses left.
var ErrNoUsesLeft = errors.New("the pass has no uses left")

type usage struct {
	ID     int64 `bun:"id"`
	PassID int64 `bun:"pass_id"`
}

// UsePassesJob declares use-passes: COMPLETED bookings with ended_at <=
// run.at not yet deducted take one use from their pass (none from an
// unlimited one) and are marked used_pass, in the chunk's transaction.
// Many bookings of one pass in a chunk each count. A pass is never driven
// below zero: the CHECK refuses the chunk's write, the engine retries it
// booking by booking, and the booking that would overdraw is skipped with
// ErrNoUsesLeft as its reason.
func UsePassesJob(d Deps) *batch.Job {
	filter := func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
		return q.Where("status = 'COMPLETED' AND used_pass = false AND ended_at <= ?", runAt(sc))
	}
	return &batch.Job{
		Name:        JobUsePasses,
		Description: "이용권 차감: deduct a use for each class that ended",
		Prepare:     prepareRunAt,
		Parameters:  []batch.ParamSpec{},
		Flow: []batch.Node{batch.NewChunk("deduct", batch.ChunkStep[usage, usage]{
			Reader: batch.KeysetReader[usage]{
				Column: "id",
				Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
					return filter(q.TableExpr("booking").Column("id", "pass_id"), sc)
				},
				KeyOf: func(u usage) int64 { return u.ID },
			},
			// The processor only checks the item; it runs concurrently to show
			// the engine's order-preserving AsyncItemProcessor.
			Processor: func(ctx context.Context, sc *batch.StepContext, u usage) (usage, error) {
				if u.PassID <= 0 {
					return u, batch.Skippable(fmt.Errorf("booking %d has no pass", u.ID))
				}
				return u, nil
			},
			Concurrency: 4,
			ChunkSize:   1000,
			Partitioner: batch.KeyRangePartitioner("booking", "id", d.Partitions, filter),
			Writer:      deductUses,
			Skip: batch.SkipPolicy{Limit: 1000, Skippable: func(err error) bool {
				var se *batch.SkippableError
				return errors.Is(err, ErrNoUsesLeft) || errors.As(err, &se)
			}},
		})},
	}
}

func deductUses(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []usage) error {
	bookings := make([]int64, len(items))
	for i, u := range items {
		bookings[i] = u.ID
	}
	arr := pgdialect.Array(bookings)
	// Lock the passes in id order first: partitions touching the same passes
	// then queue instead of deadlocking.
	if _, err := exec(ctx, tx, "lock passes", `SELECT 1 FROM pass WHERE id IN (SELECT pass_id FROM booking WHERE id = ANY(?))
		ORDER BY id FOR UPDATE`, arr); err != nil {
		return err
	}
	_, err := exec(ctx, tx, "deduct uses", `WITH b AS (
			SELECT id, pass_id FROM booking WHERE id = ANY(?) AND status = 'COMPLETED' AND NOT used_pass
		), d AS (
			SELECT pass_id, count(*) AS n FROM b GROUP BY pass_id
		), p AS (
			UPDATE pass SET remaining_count = pass.remaining_count - d.n, modified_at = now()
			FROM d WHERE pass.id = d.pass_id AND pass.remaining_count IS NOT NULL
			RETURNING pass.id
		)
		UPDATE booking SET used_pass = true, modified_at = now()
		FROM b WHERE booking.id = b.id`, arr)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23514" {
		if len(items) == 1 {
			return fmt.Errorf("booking %d, pass %d: %w", items[0].ID, items[0].PassID, ErrNoUsesLeft)
		}
		return batch.Skippable(err) // isolate the booking item by item
	}
	return err
}
