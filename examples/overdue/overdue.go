// Package overdue is the example job of docs/writing-a-job.md: mark-overdue
// finds the open invoices due by run.at, sends each a reminder, and marks
// them OVERDUE. It is a partitioned, restartable chunk step with retry
// (a reminder service that fails now and then) and skip (an address that
// will never work), on its own table, so it runs anywhere passbatch does.
package overdue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
)

// Schema creates the example's table. In a real service it is a migration.
const Schema = `CREATE TABLE IF NOT EXISTS invoice (
	id          bigserial   PRIMARY KEY,
	email       text        NOT NULL,
	amount      integer     NOT NULL CHECK (amount > 0),
	due_at      timestamptz NOT NULL,
	status      text        NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'OVERDUE', 'PAID')),
	reminded_at timestamptz
);
CREATE INDEX IF NOT EXISTS invoice_open_idx ON invoice (id) WHERE status = 'OPEN'`

// Name is the job's name: what a launch, the schedule and the pages use.
const Name = "mark-overdue"

// Invoice is an item of the step: what the reader reads.
type Invoice struct {
	ID     int64  `bun:"id"`
	Email  string `bun:"email"`
	Amount int    `bun:"amount"`
}

// ErrBadAddress is an address no retry will reach: the item is skipped.
var ErrBadAddress = errors.New("no such address")

// Reminder sends one reminder. It must be idempotent by invoice (a chunk
// that fails after sending is sent again), and say what failed: an error
// wrapping ErrBadAddress is skipped, one wrapped with batch.Retryable is
// tried again, anything else fails the step.
type Reminder interface {
	Remind(ctx context.Context, inv Invoice) error
}

// Job declares mark-overdue over the reminder r, its step split into
// partitions key ranges of invoice ids.
func Job(r Reminder, partitions int) *batch.Job {
	return &batch.Job{
		Name:        Name,
		Description: "mark the invoices due by run.at OVERDUE, with a reminder each",
		Prepare:     prepareRunAt,
		Flow:        []batch.Node{remindStep(r, partitions)},
	}
}

// prepareRunAt gives a launch without run.at the launch time: the job
// decides by this business time, never by the clock, so a re-run of the
// same run.at is the same job instance.
func prepareRunAt(p batch.Params, now time.Time) (batch.Params, error) {
	if _, ok := p[batch.ParamRunAt]; !ok {
		p = p.With(batch.ParamRunAt, now.UTC().Truncate(time.Second).Format(time.RFC3339), true)
	}
	if _, err := p.RunAt(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", batch.ErrInvalidParams, batch.ParamRunAt, err)
	}
	return p, nil
}

// due selects the open invoices due by the run's time.
func due(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
	at, _ := sc.Params.RunAt()
	return q.Where("status = 'OPEN' AND due_at <= ?", at)
}

func remindStep(r Reminder, partitions int) *batch.Step {
	return batch.NewChunk("remind", batch.ChunkStep[Invoice, Invoice]{
		// Keyset pages over id: a restart resumes after the last
		// committed chunk's key.
		Reader: batch.KeysetReader[Invoice]{
			Column: "id",
			Query: func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
				return due(q.TableExpr("invoice").Column("id", "email", "amount"), sc)
			},
			KeyOf: func(inv Invoice) int64 { return inv.ID },
		},
		// Outside the transaction, 4 at a time.
		Processor: func(ctx context.Context, sc *batch.StepContext, inv Invoice) (Invoice, error) {
			return inv, r.Remind(ctx, inv)
		},
		Concurrency: 4,
		// One statement per chunk, in the chunk's transaction with its
		// checkpoint.
		Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, items []Invoice) error {
			at, _ := sc.Params.RunAt()
			ids := make([]int64, len(items))
			for i, inv := range items {
				ids[i] = inv.ID
			}
			_, err := tx.NewRaw(`UPDATE invoice SET status = 'OVERDUE', reminded_at = ? WHERE id = ANY(?) AND status = 'OPEN'`,
				at, pgdialect.Array(ids)).Exec(ctx)
			return err
		},
		ChunkSize:   200,
		Partitioner: batch.KeyRangePartitioner("invoice", "id", partitions, due),
		Retry:       batch.RetryPolicy{Limit: 3, Backoff: func(int) time.Duration { return 20 * time.Millisecond }},
		Skip: batch.SkipPolicy{Limit: 100, Skippable: func(err error) bool {
			return errors.Is(err, ErrBadAddress)
		}},
	})
}
