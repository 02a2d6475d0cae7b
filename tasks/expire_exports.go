package tasks

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
)

// JobExpireExports names expire-exports.
const JobExpireExports = "expire-exports"

// ExpireExportsJob declares expire-exports: COMPLETED exports whose
// retention ended by run.at, and FAILED ones not restarted within
// ExportRetention, become EXPIRED and their files are removed (see
// ExpireExports). It is its own scheduled job, so a storage error removing
// someone's old file never fails a user's export; an export whose files
// cannot be removed stays as it is, the others expire, the run FAILS with
// the reason, and the next run tries again.
func ExpireExportsJob(d Deps) *batch.Job {
	return &batch.Job{
		Name:        JobExpireExports,
		Description: "내보내기 만료: expire exports past their retention and remove their files",
		Prepare:     prepareRunAt,
		Parameters:  []batch.ParamSpec{},
		Flow: []batch.Node{batch.NewIOTasklet("expire", func(ctx context.Context, db bun.IDB, sc *batch.StepContext) (batch.RepeatStatus, error) {
			n, err := ExpireExports(ctx, db, d.Store, runAt(sc))
			sc.Counts.Write = int64(n)
			return batch.Finished, err
		}).WithRetry(batch.RetryPolicy{Limit: 3})},
	}
}
