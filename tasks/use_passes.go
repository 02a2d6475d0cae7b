package tasks

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
)

// ErrNoUsesLeft is why use-passes skips a booking whose pass has no uses left.
var ErrNoUsesLeft = errors.New("the pass has no uses left")

type usage struct {
	ID     int64 `bun:"id"`
	PassID int64 `bun:"pass_id"`
}

// UsePassesJob declares use-passes: the bookings of classes that ended by
// run.at become COMPLETED (step complete), then COMPLETED bookings with
// ended_at <= run.at not yet deducted take one use from their pass (none from an
// unlimited one) and are marked used_pass, in the chunk's transaction.
// Many bookings of one pass in a chunk each count. A pass is never driven
// below zero: the CHECK refuses the chunk's write, the engine retries it
// booking by booking, and the booking that would overdraw is skipped with
// ErrNoUsesLeft as its reason.
//
// The step is partitioned by what its writer locks, the pass: bookings
// are read by (pass_id, id) and a chunk holds whole passes (a grouped
// reader), so two chunks, in one partition or two, never update the same
// pass and never wait on each other's row locks. (Read by booking id, each
// chunk of 1,000 bookings locked ~1,000 passes that other partitions'
// chunks also locked: locking them in order first cost as much as the
// write itself, bench/results.md.)
func UsePassesJob(d Deps) *batch.Job {
	filter := func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
		return q.Where("status = 'COMPLETED' AND used_pass = false AND ended_at <= ?", runAt(sc))
	}
	return &batch.Job{
		Name:        JobUsePasses,
		Description: "이용권 차감: deduct a use for each class that ended",
		Prepare:     prepareRunAt,
		Parameters:  []batch.ParamSpec{},
		Flow: []batch.Node{batch.NewTasklet("complete", completeClasses), batch.NewChunk("deduct", batch.ChunkStep[usage, usage]{
			Reader: batch.KeysetReader[usage]{
				Column: "pass_id", Then: "id", Group: true,
				Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
					return filter(q.TableExpr("booking").Column("id", "pass_id"), sc)
				},
				KeyOf: func(u usage) int64 { return u.PassID },
				IDOf:  func(u usage) int64 { return u.ID },
			},
			ChunkSize:   1000,
			Partitioner: batch.KeyRangePartitioner("booking", "pass_id", d.Partitions, filter),
			Writer:      deductUses,
			// A chunk whose write would overdraw a pass is retried booking
			// by booking (Skippable), and the overdrawing booking skipped.
			Skip: batch.SkipPolicy{Limit: 1000, Skippable: func(err error) bool {
				var se *batch.SkippableError
				return errors.Is(err, ErrNoUsesLeft) || errors.As(err, &se)
			}},
		})},
	}
}

// completeClasses marks COMPLETED the READY bookings of classes that ended
// by run.at, one statement: a class on the timetable costs a use whether
// the member came or not (attendance is the admin's record, for the
// statistics). Bookings recorded without a class are left as they are.
func completeClasses(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
	n, err := exec(ctx, tx, "complete the bookings of ended classes", `UPDATE booking SET status = 'COMPLETED', modified_at = now()
		WHERE status = 'READY' AND class_id IS NOT NULL AND ended_at <= ?`, runAt(sc))
	sc.Counts.Read, sc.Counts.Write = n, n
	return batch.Finished, err
}

// deductUses takes one use per booking from its pass and marks the
// bookings used, in one statement over the chunk's pass range (or, when
// the engine isolates a booking, over the bookings given). The chunk holds every booking it reads
// of its passes and no other chunk touches them (see UsePassesJob), so no
// lock ordering is needed.
func deductUses(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []usage) error {
	bookings := make([]int64, len(items))
	for i, u := range items {
		bookings[i] = u.ID
	}
	where, args := chunkWhere(sc, "pass_id", bookings)
	_, err := exec(ctx, tx, "deduct uses", `WITH b AS (
			SELECT id, pass_id FROM booking WHERE `+where+` AND status = 'COMPLETED' AND NOT used_pass AND ended_at <= ?
		), d AS (
			SELECT pass_id, count(*) AS n FROM b GROUP BY pass_id
		), p AS (
			UPDATE pass SET remaining_count = pass.remaining_count - d.n, modified_at = now()
			FROM d WHERE pass.id = d.pass_id AND pass.remaining_count IS NOT NULL
			RETURNING pass.id
		)
		UPDATE booking SET used_pass = true, modified_at = now()
		FROM b WHERE booking.id = b.id`, append(args, runAt(sc))...)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23514" {
		if len(items) == 1 {
			return fmt.Errorf("booking %d, pass %d: %w", items[0].ID, items[0].PassID, ErrNoUsesLeft)
		}
		return batch.Skippable(err) // isolate the booking item by item
	}
	return err
}
