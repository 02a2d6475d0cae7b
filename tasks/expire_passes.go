package tasks

import (
	"context"

	"github.com/uptrace/bun"

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
// A pass's life is READY → PROGRESSED → EXPIRED. Each chunk's write is one
// statement over the chunk's id range with the reader's filter (an index
// range, not 5,000 lookups of an id list; see chunkWhere).
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
				ChunkSize:   5000,
				Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []idItem) error {
					where, args := chunkWhere(sc, "id", ids(items))
					_, err := exec(ctx, tx, "expire passes", `UPDATE pass SET status = 'EXPIRED', expired_at = ?, modified_at = now()
						WHERE `+where+` AND status = 'PROGRESSED' AND (ended_at <= ? OR remaining_count = 0)`,
						append(append([]any{runAt(sc)}, args...), runAt(sc))...)
					return err
				},
			}),
			batch.NewChunk("start", batch.ChunkStep[idItem, idItem]{
				Reader:      passReader(starting),
				Partitioner: batch.KeyRangePartitioner("pass", "id", d.Partitions, starting),
				ChunkSize:   5000,
				Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []idItem) error {
					where, args := chunkWhere(sc, "id", ids(items))
					_, err := exec(ctx, tx, "start passes", `UPDATE pass SET status = 'PROGRESSED', modified_at = now()
						WHERE `+where+` AND status = 'READY' AND started_at <= ?`, append(args, runAt(sc))...)
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
