package tasks

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
)

// JobPurgeJobRepository names purge-job-repository.
const JobPurgeJobRepository = "purge-job-repository"

// PurgeJobRepositoryJob declares purge-job-repository: the job instances
// whose executions all ended more than RepositoryRetention before run.at,
// their last one COMPLETED or ABANDONED, are deleted with everything they
// hold (batch.Purge), batch.PurgeBatch instances a transaction: the tasklet
// is called again until nothing is due, and a stop or a crash keeps what
// was purged. Instances whose last execution FAILED or STOPPED stay (they
// can be restarted). With a retention of 0 it keeps everything (NOOP).
func PurgeJobRepositoryJob(d Deps) *batch.Job {
	return &batch.Job{
		Name:        JobPurgeJobRepository,
		Description: "작업 기록 정리: delete finished executions older than REPOSITORY_RETENTION",
		Prepare:     prepareRunAt,
		Parameters:  []batch.ParamSpec{},
		Flow: []batch.Node{batch.NewTasklet("purge", func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
			if d.RepositoryRetention <= 0 {
				sc.ExitStatus = batch.ExitNoop
				return batch.Finished, nil
			}
			r, err := batch.PurgeStep(ctx, tx, runAt(sc).Add(-d.RepositoryRetention), batch.PurgeBatch)
			if err != nil {
				return batch.Finished, err
			}
			sc.Counts.Read, sc.Counts.Write = r.Instances, r.Executions
			if r.Instances > 0 {
				return batch.Continuable, nil
			}
			return batch.Finished, nil
		})},
	}
}
