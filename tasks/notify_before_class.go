package tasks

import (
	"context"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
)

// ClassNoticeWindow is how long before a class its notice goes out.
const ClassNoticeWindow = 10 * time.Minute

// NotifyBeforeClassJob declares notify-before-class:
//
//  1. create: READY bookings starting in (run.at, run.at + 10 min] get one
//     BEFORE_CLASS notification each (dedup_key before-class:booking:<id>;
//     overlapping windows of runs a minute apart create nothing twice);
//  2. send: unsent BEFORE_CLASS notifications, and the CLASS_CANCELLED ones
//     an admin's cancellation recorded, go out (see sendStep); when
//     none did, the step and the job end with exit status NOOP.
func NotifyBeforeClassJob(d Deps) *batch.Job {
	filter := func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
		at := runAt(sc)
		return q.Where("status = 'READY' AND started_at > ? AND started_at <= ?", at, at.Add(ClassNoticeWindow))
	}
	return &batch.Job{
		Name:        JobNotifyBeforeClass,
		Description: "수업 10분 전 알림: notify users of classes starting within 10 minutes",
		Prepare:     prepareRunAt,
		Parameters:  []batch.ParamSpec{},
		Flow: []batch.Node{
			batch.NewChunk("create", batch.ChunkStep[idItem, idItem]{
				Reader: batch.KeysetReader[idItem]{
					Column: "id",
					Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
						return filter(q.TableExpr("booking").Column("id"), sc)
					},
					KeyOf: idOf,
				},
				ChunkSize: 1000,
				Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []idItem) error {
					_, err := exec(ctx, tx, "create class notices", `INSERT INTO notification (user_id, event, dedup_key, text)
						SELECT b.user_id, ?, 'before-class:booking:' || b.id,
						       u.name || '님, ' || to_char(b.started_at AT TIME ZONE ?, 'HH24:MI') || ' 수업이 곧 시작합니다. (' || p.name || ')'
						FROM booking b JOIN users u ON u.id = b.user_id JOIN pass s ON s.id = b.pass_id JOIN package p ON p.id = s.package_id
						WHERE b.id = ANY(?)
						ORDER BY b.id
						ON CONFLICT (dedup_key) DO NOTHING`, models.EventBeforeClass, models.Seoul.String(), pgdialect.Array(ids(items)))
					return err
				},
			}),
			// Nothing to send ends the job with exit status NOOP.
			sendStep(d, "send", models.EventBeforeClass, models.EventClassCancelled).WithListeners(batch.ExitStatus(batch.NoopWhenNothingWritten)),
		},
	}
}
