// Package tasks holds the PT gym's batch jobs, built on the batch engine,
// one file per job, and the task types around them (ad-hoc grants, cron
// launches). Every rule reads its business time from the run.at parameter,
// never from the clock, so a rerun of an instance decides the same way.
package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/notify"
	"github.com/passbatch/passbatch/storage"
)

// Job names.
const (
	JobExpirePasses       = "expire-passes"
	JobAddPasses          = "add-passes"
	JobNotifyBeforeClass  = "notify-before-class"
	JobUsePasses          = "use-passes"
	JobMakeStatistics     = "make-statistics"
	JobNotifyBeforeExpiry = "notify-before-expiry"
)

// Deps are what the jobs use besides their transaction.
type Deps struct {
	DB       *bun.DB
	Notifier notify.Notifier
	Store    storage.Store
	Logger   *slog.Logger
	// Partitions fixes how many partitions every partitioned step gets.
	// Default 0: the launch's partitions= parameter, else the engine's
	// setting (PARTITIONS, batch.Options.Partitions).
	Partitions int
	// RepositoryRetention is how long purge-job-repository keeps finished
	// executions (REPOSITORY_RETENTION). 0 keeps everything.
	RepositoryRetention time.Duration
}

// Jobs returns every PT job.
func Jobs(d Deps) []*batch.Job {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Notifier == nil {
		d.Notifier = notify.Log{Logger: d.Logger}
	}
	return []*batch.Job{
		ExpirePassesJob(d), AddPassesJob(d), NotifyBeforeClassJob(d),
		UsePassesJob(d), MakeStatisticsJob(d), NotifyBeforeExpiryJob(d), ExportJob(d), PurgeIdempotencyKeysJob(d),
		ExpireExportsJob(d), PurgeJobRepositoryJob(d),
	}
}

// Registry returns a registry of every PT job.
func Registry(d Deps) *batch.Registry { return batch.NewRegistry(Jobs(d)...) }

// prepareRunAt defaults run.at (identifying) to now, to the second, and
// checks it is an RFC 3339 time.
func prepareRunAt(p batch.Params, now time.Time) (batch.Params, error) {
	if _, ok := p[batch.ParamRunAt]; !ok {
		p = p.With(batch.ParamRunAt, now.UTC().Truncate(time.Second).Format(time.RFC3339), true)
	}
	if _, err := p.RunAt(); err != nil {
		return nil, err
	}
	return p, nil
}

// runAt reads run.at; Prepare has validated it.
func runAt(sc *batch.StepContext) time.Time {
	t, _ := sc.Params.RunAt()
	return t
}

// idItem is an item that is just a row id.
type idItem struct {
	ID int64 `bun:"id"`
}

func idOf(it idItem) int64 { return it.ID }

func ids(items []idItem) []int64 {
	out := make([]int64, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

// exec runs one statement and adds context to its error.
func exec(ctx context.Context, db bun.IDB, what, query string, args ...any) (int64, error) {
	res, err := db.NewRaw(query, args...).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// chunkWhere is a writer's condition on its items: the chunk's key range
// on col (the reader's key) when it is given the whole chunk, so one
// statement reads an index range (the writer repeats its reader's filter),
// or the items' ids when the engine isolates some of them.
func chunkWhere(sc *batch.StepContext, col string, ids []int64) (string, []any) {
	if len(ids) == sc.ChunkItems && sc.ChunkItems > 0 {
		return col + " BETWEEN ? AND ?", []any{sc.ChunkStart, sc.ChunkEnd}
	}
	return "id = ANY(?)", []any{pgdialect.Array(ids)}
}
