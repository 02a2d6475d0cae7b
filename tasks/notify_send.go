package tasks

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/notify"
)

type outgoing struct {
	ID       int64     `bun:"id"`
	UUID     uuid.UUID `bun:"uuid"`
	UserID   int64     `bun:"user_id"`
	Event    string    `bun:"event"`
	DedupKey string    `bun:"dedup_key"`
	Text     string    `bun:"text"`
}

// sendStep sends the unsent notifications of events through the
// notifier, partitioned by id. The processor sends (8 at a time, outside
// any transaction); the writer marks the sent ones in the short chunk
// transaction — after the receiver accepted them, so delivery is
// at-least-once and the Idempotency-Key (the notification's uuid) lets the
// receiver drop repeats. A refused one (4xx, *notify.PermanentError) is
// skipped with the reason and marked with it, so it is not sent again; a
// 5xx or timeout (*notify.TransientError) is retried three times, then
// fails the step (the next run sends what is left).
func sendStep(d Deps, name string, events ...string) *batch.Step {
	filter := func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
		return q.Where("sent = false AND error IS NULL AND event IN (?)", bun.In(events))
	}
	return batch.NewChunk(name, batch.ChunkStep[outgoing, outgoing]{
		Reader: batch.KeysetReader[outgoing]{
			Column: "id",
			Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
				return filter(q.TableExpr("notification").Column("id", "uuid", "user_id", "event", "dedup_key", "text"), sc)
			},
			KeyOf: func(o outgoing) int64 { return o.ID },
		},
		Processor: func(ctx context.Context, sc *batch.StepContext, o outgoing) (outgoing, error) {
			return o, d.Notifier.Send(ctx, notify.Message{UUID: o.UUID, UserID: o.UserID, Event: o.Event, DedupKey: o.DedupKey, Text: o.Text})
		},
		Concurrency: 8,
		ChunkSize:   200,
		Partitioner: batch.KeyRangePartitioner("notification", "id", d.Partitions, filter),
		Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []outgoing) error {
			ids := make([]int64, len(items))
			for i, o := range items {
				ids[i] = o.ID
			}
			_, err := exec(ctx, tx, "mark sent", `UPDATE notification SET sent = true, sent_at = clock_timestamp(), modified_at = now()
				WHERE id = ANY(?) AND sent = false`, pgdialect.Array(ids))
			return err
		},
		Retry: batch.RetryPolicy{Limit: 3},
		Skip:  batch.SkipPolicy{Limit: 1 << 30, Skippable: notify.IsPermanent},
		OnSkip: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, skipped []batch.SkippedItem) error {
			for _, s := range skipped {
				if _, err := exec(ctx, tx, "mark refused", `UPDATE notification SET error = ?, modified_at = now() WHERE id = ?`,
					fmt.Sprintf("%s: %v", s.Phase, s.Err), s.Key); err != nil {
					return err
				}
			}
			return nil
		},
	})
}
