package tasks

import (
	"context"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
)

// ExpirePassesJob declares expire-passes:
//
//  1. expire (partitioned): PROGRESSED passes with ended_at <= run.at or
//     remaining_count = 0 become EXPIRED with expired_at = run.at. Unlimited
//     passes (NULL count or end) never expire by what they lack.
//  2. start (partitioned): READY passes with started_at <= run.at become
//     PROGRESSED.
//
// A pass's life is READY → PROGRESSED → EXPIRED.
func ExpirePassesJob(d Deps) *batch.Job {
	expiring := func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
		return q.Where("status = 'PROGRESSED' AND (ended_at <= ? OR remaining_count = 0)", runAt(sc))
	}
	starting := func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
		return q.Where("status = 'READY' AND started_at <= ?", runAt(sc))
	}
	return &batch.Job{
		Name:        JobExpirePasses,
		Description: "만료: expire ended or used-up passes, start passes whose day has come",
		Prepare:     prepareRunAt,
		Parameters:  []batch.ParamSpec{},
		Flow: []batch.Node{
			batch.NewChunk("expire", batch.ChunkStep[idItem, idItem]{
				Reader:      passReader(expiring),
				Partitioner: batch.KeyRangePartitioner("pass", "id", d.Partitions, expiring),
				ChunkSize:   1000,
				Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []idItem) error {
					_, err := exec(ctx, tx, "expire passes", `UPDATE pass SET status = 'EXPIRED', expired_at = ?, modified_at = now()
						WHERE id = ANY(?) AND status = 'PROGRESSED'`, runAt(sc), pgdialect.Array(ids(items)))
					return err
				},
			}),
			batch.NewChunk("start", batch.ChunkStep[idItem, idItem]{
				Reader:      passReader(starting),
				Partitioner: batch.KeyRangePartitioner("pass", "id", d.Partitions, starting),
				ChunkSize:   1000,
				Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []idItem) error {
					_, err := exec(ctx, tx, "start passes", `UPDATE pass SET status = 'PROGRESSED', modified_at = now()
						WHERE id = ANY(?) AND status = 'READY'`, pgdialect.Array(ids(items)))
					return err
				},
			}),
		},
	}
}

func passReader(filter func(*bun.SelectQuery, *batch.StepContext) *bun.SelectQuery) batch.Reader[idItem] {
	return batch.KeysetReader[idItem]{
		Column: "id",
		Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
			return filter(q.TableExpr("pass").Column("id"), sc)
		},
		KeyOf: idOf,
	}
}
