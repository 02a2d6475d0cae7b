package tasks

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
)

// JobPurgeIdempotencyKeys names purge-idempotency-keys.
const JobPurgeIdempotencyKeys = "purge-idempotency-keys"

// IdempotencyKeyTTL is how long the API remembers an Idempotency-Key: a
// client retries within minutes; after a day the key may name anything.
const IdempotencyKeyTTL = 24 * time.Hour

// PurgeIdempotencyKeysJob declares purge-idempotency-keys: the API's
// idempotency keys recorded more than IdempotencyKeyTTL before run.at are
// deleted, so the table does not grow forever.
func PurgeIdempotencyKeysJob(d Deps) *batch.Job {
	return &batch.Job{
		Name:        JobPurgeIdempotencyKeys,
		Description: "멱등 키 정리: delete the API's idempotency keys older than a day",
		Prepare:     prepareRunAt,
		Parameters:  []batch.ParamSpec{},
		Flow: []batch.Node{batch.NewTasklet("purge", func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
			n, err := exec(ctx, tx, "purge idempotency keys", "DELETE FROM idempotency_key WHERE created_at < ?", runAt(sc).Add(-IdempotencyKeyTTL))
			sc.Counts.Write = n
			return batch.Finished, err
		})},
	}
}
