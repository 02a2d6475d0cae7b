package tasks

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
)

// ParamDays is notify-before-expiry's window in days (default 3).
const ParamDays = "days"

// NotifyBeforeExpiryJob declares notify-before-expiry:
//
//  1. create: PROGRESSED passes ending within `days` of run.at get one
//     "ends" notice, and those with at most one use left one "last-use"
//     notice (dedup keys before-expiry:pass:<id>:ends / :last-use);
//  2. send: unsent BEFORE_EXPIRY notifications go out (see sendStep).
func NotifyBeforeExpiryJob(d Deps) *batch.Job {
	filter := func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
		at := runAt(sc)
		days, _ := sc.Params.Int(ParamDays, 3)
		return q.Where("status = 'PROGRESSED' AND ((ended_at > ? AND ended_at <= ?) OR remaining_count <= 1)",
			at, at.Add(time.Duration(days)*24*time.Hour))
	}
	return &batch.Job{
		Name:        JobNotifyBeforeExpiry,
		Parameters:  []batch.ParamSpec{{Name: ParamDays, Type: batch.TypeLong, Description: "warn passes ending within this many days (default 3)"}},
		Description: "만료 예정 알림: notify users whose pass ends soon or has one use left",
		Prepare: func(p batch.Params, now time.Time) (batch.Params, error) {
			days, err := p.Int(ParamDays, 3)
			if err != nil {
				return nil, err
			}
			if days < 1 || days > 365 {
				return nil, fmt.Errorf("%w: days must be 1 to 365", batch.ErrInvalidParams)
			}
			return prepareRunAt(p, now)
		},
		Flow: []batch.Node{
			batch.NewChunk("create", batch.ChunkStep[idItem, idItem]{
				Reader:      passReader(filter),
				Partitioner: batch.KeyRangePartitioner("pass", "id", d.Partitions, filter),
				ChunkSize:   1000,
				Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []idItem) error {
					at := runAt(sc)
					days, _ := sc.Params.Int(ParamDays, 3)
					_, err := exec(ctx, tx, "create expiry notices", `INSERT INTO notification (user_id, event, dedup_key, text)
						SELECT s.user_id, ?, 'before-expiry:pass:' || s.id || ':ends',
						       u.name || '님, ' || p.name || ' 이용권이 ' || to_char(s.ended_at AT TIME ZONE ?, 'MM"월" DD"일"') || '에 만료됩니다.'
						FROM pass s JOIN users u ON u.id = s.user_id JOIN package p ON p.id = s.package_id
						WHERE s.id = ANY(?) AND s.ended_at > ? AND s.ended_at <= ?
						UNION ALL
						SELECT s.user_id, ?, 'before-expiry:pass:' || s.id || ':last-use',
						       u.name || '님, ' || p.name || ' 이용권의 남은 횟수가 ' || s.remaining_count || '회입니다.'
						FROM pass s JOIN users u ON u.id = s.user_id JOIN package p ON p.id = s.package_id
						WHERE s.id = ANY(?) AND s.remaining_count <= 1
						ORDER BY 3
						ON CONFLICT (dedup_key) DO NOTHING`,
						models.EventBeforeExpiry, models.Seoul.String(), pgdialect.Array(ids(items)), at, at.Add(time.Duration(days)*24*time.Hour),
						models.EventBeforeExpiry, pgdialect.Array(ids(items)))
					return err
				},
			}),
			sendStep(d, "send", models.EventBeforeExpiry),
		},
	}
}
