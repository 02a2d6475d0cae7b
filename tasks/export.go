package tasks

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/notify"
)

// JobExport produces an export's file.
const JobExport = "export"

// ParamExportID names the export an export job produces.
const ParamExportID = "export_id"

// ExportRetention is how long a finished export is offered again and kept.
const ExportRetention = 7 * 24 * time.Hour

// xlsxMaxRows is an XLSX sheet's row limit; the header takes one.
const xlsxMaxRows = 1_048_576

// ExportJob declares export: count → parts (partitioned: each chunk's rows
// become one part file in the final encoding, CSV text or deflated
// SpreadsheetML rows, named by its partition and first key, so a redone
// chunk rewrites its own part) → merge (a copy of the parts in key order
// into one CSV, or one XLSX with sheets of at most 1,048,575 rows; stored
// with size and SHA-256, once the parts are seen to hold every row the
// partitions wrote) → remove-parts, only once the merge has committed: a
// merge that runs again (its commit failed, a duplicate delivery) still
// finds them, or finds its file recorded and leaves it alone. A merge that
// FAILED goes to cleanup, which removes the parts when the export will not
// be restarted, and the job ends FAILED. An after-job listener marks the
// export COMPLETED or FAILED with the reason, once. Restarting a failed
// export resumes from its finished partitions. Old exports expire in
// their own job (expire-exports), not in anyone's export.
func ExportJob(d Deps) *batch.Job {
	return &batch.Job{
		Name:        JobExport,
		Parameters:  []batch.ParamSpec{{Name: ParamExportID, Type: batch.TypeLong, Required: true, Description: "the export to produce"}},
		Description: "데이터 내보내기: export passes, bookings or statistics to XLSX or CSV",
		Prepare:     prepareExport,
		Listeners:   exportListeners(d),
		Flow: []batch.Node{
			batch.NewTasklet("count", countExport),
			batch.NewChunk("parts", exportParts(d)),
			batch.NewIOTasklet("merge", mergeStep(d)).WithRetry(batch.RetryPolicy{Limit: 3}).On("FAILED", batch.To("cleanup")),
			// It runs again after each failed merge, restarts included.
			batch.NewIOTasklet("cleanup", cleanupParts(d)).AllowStartIfComplete().On("*", batch.Fail()),
			batch.NewIOTasklet("remove-parts", removeParts(d)).WithRetry(batch.RetryPolicy{Limit: 3}),
		},
	}
}

// prepareExport checks export_id and adds run.at, which decides retention
// but does not identify the export's run.
func prepareExport(p batch.Params, now time.Time) (batch.Params, error) {
	if id, err := p.Int(ParamExportID, 0); err != nil || id <= 0 {
		return nil, fmt.Errorf("%w: export_id is required", batch.ErrInvalidParams)
	}
	if _, ok := p[batch.ParamRunAt]; !ok {
		p = p.With(batch.ParamRunAt, now.UTC().Truncate(time.Second).Format(time.RFC3339), false)
	}
	if _, err := p.RunAt(); err != nil {
		return nil, err
	}
	return p, nil
}

// exportListeners keep the export row in step with its job: RUNNING again
// on a restart, COMPLETED or FAILED at the end, and the event to the
// notifier after the commit.
func exportListeners(d Deps) []batch.JobListener {
	return []batch.JobListener{{BeforeJob: func(ctx context.Context, tx bun.Tx, je *batch.JobExecution, p batch.Params) error {
		// A restarted export is running again (unless an identical
		// request has started another export meanwhile).
		id, _ := p.Int(ParamExportID, 0)
		_, err := exec(ctx, tx, "resume export", `UPDATE export SET status = 'RUNNING', error = NULL, job_execution_id = ?, modified_at = now()
				WHERE id = ? AND status = 'FAILED' AND NOT EXISTS (SELECT 1 FROM export o WHERE o.filter_hash = export.filter_hash
				AND o.status IN ('PENDING', 'RUNNING') AND o.id <> export.id)`, je.JobExecutionID, id)
		return err
	}, AfterJob: func(ctx context.Context, tx bun.Tx, je *batch.JobExecution, p batch.Params) error {
		id, _ := p.Int(ParamExportID, 0)
		var err error
		if je.Status == batch.StatusCompleted {
			_, err = exec(ctx, tx, "complete export", `UPDATE export SET status = 'COMPLETED', expires_at = now() + ?::interval, error = NULL, modified_at = now() WHERE id = ?`,
				fmt.Sprintf("%d seconds", int(ExportRetention.Seconds())), id)
		} else {
			_, err = exec(ctx, tx, "fail export", `UPDATE export SET status = 'FAILED', error = ?, modified_at = now() WHERE id = ? AND status <> 'EXPIRED'`,
				je.Status+": "+je.ExitMessage, id)
		}
		d.Logger.InfoContext(ctx, "export finished", "export_id", id, "status", je.Status, "job_execution_id", je.JobExecutionID)
		return err
	}, AfterJobCommitted: func(ctx context.Context, je *batch.JobExecution, p batch.Params) {
		// The event also goes to the notifier (the webhook when configured),
		// best effort and after the commit: a receiver that is down must
		// not hold the export back, nor a transaction open.
		id, _ := p.Int(ParamExportID, 0)
		key := fmt.Sprintf("export:%d:%s", id, je.Status)
		msg := notify.Message{UUID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("passbatch:"+key)), Event: "EXPORT_" + je.Status, DedupKey: key,
			Text: fmt.Sprintf("export %d finished: %s %s", id, je.Status, je.ExitMessage)}
		if serr := d.Notifier.Send(ctx, msg); serr != nil {
			d.Logger.WarnContext(ctx, "export event not delivered", "export_id", id, "err", serr)
		}
	}}}
}

// countExport counts the export's rows and marks it RUNNING.
func countExport(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
	e, k, f, err := loadExport(ctx, tx, sc)
	if err != nil {
		return batch.Finished, err
	}
	// The keyset table alone: its joins are to the rows it refers to, and
	// reading them doubled the count's time.
	n, err := k.where(tx.NewSelect().TableExpr(k.keyFrom), f).Count(ctx)
	if err != nil {
		return batch.Finished, fmt.Errorf("count export rows: %w", err)
	}
	if _, err := exec(ctx, tx, "start export", `UPDATE export SET status = 'RUNNING', total_rows = ?, written_rows = 0,
		job_execution_id = ?, modified_at = now() WHERE id = ?`, n, sc.JobExecutionID, e.ID); err != nil {
		return batch.Finished, err
	}
	sc.Counts.Read, sc.Counts.Write = int64(n), 1
	return batch.Finished, nil
}

// exportParts is the partitioned step: each chunk's rows become one part
// file, stored outside the chunk transaction; one that cannot be
// stored (storage down, disk full) is retried in place a few times before
// the step fails, and a restart then resumes from the finished partitions.
func exportParts(d Deps) batch.ChunkStep[exportRow, exportRow] {
	cache := &exportCache{}
	return batch.ChunkStep[exportRow, exportRow]{
		Reader: exportReader{cache: cache},
		Partitioner: func(ctx context.Context, db bun.IDB, sc *batch.StepContext) ([]batch.Range, error) {
			e, k, f, err := loadExport(ctx, db, sc)
			if err != nil {
				return nil, err
			}
			return batch.KeyRangePartitioner(k.keyFrom, k.keyCol(), exportPartitions(ctx, d, sc, e), func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
				return k.where(q, f)
			})(ctx, db, sc)
		},
		// A chunk is a part: 20,000 rows (2 MB of CSV) made the parts step
		// 25-30% faster than 5,000 (fewer COPYs, fsyncs and commits).
		ChunkSize: 20_000,
		Retry:     batch.RetryPolicy{Limit: 3},
		Emit: func(ctx context.Context, sc *batch.StepContext, rows []exportRow) error {
			x, err := cache.get(ctx, d.DB, sc)
			if err != nil {
				return err
			}
			return storePart(ctx, d.Store, sc, x.export.Format, x.kind, rows)
		},
		// The part file is the chunk's output: the transaction only
		// commits the checkpoint and the counts. (A per-chunk UPDATE of
		// the export's written_rows made every partition queue on that one
		// row's lock; progress is read from the partitions' write counts.)
		Writer: func(context.Context, bun.Tx, *batch.StepContext, []exportRow) error { return nil },
	}
}

// exportRowsPerPartition is the fewest rows an export partition gets
// (two and a half chunks) unless the launch names its partitions: each
// partition costs a task, a claim and a part per chunk, and on a small
// machine 160 partitions of 6,000 rows ran 15-35% slower than 16
// (bench/results.md).
const exportRowsPerPartition = 50_000

// exportPartitions is the setting's partition count (PARTITIONS, or the
// launch's partitions=N), at most one per exportRowsPerPartition rows of
// the export when the launch does not name it.
func exportPartitions(ctx context.Context, d Deps, sc *batch.StepContext, e *models.Export) int {
	_, named := sc.Params[batch.ParamPartitions]
	n := d.Partitions
	if named || n < 1 {
		n = sc.Partitions(ctx, -1)
	}
	if !named && e.TotalRows != nil {
		n = min(n, max(1, int((*e.TotalRows+exportRowsPerPartition-1)/exportRowsPerPartition)))
	}
	return n
}

// mergeStep joins the parts into the export's file.
func mergeStep(d Deps) batch.IOTasklet {
	return func(ctx context.Context, db bun.IDB, sc *batch.StepContext) (batch.RepeatStatus, error) {
		e, k, _, err := loadExport(ctx, db, sc)
		if err != nil {
			return batch.Finished, err
		}
		written, err := partsWritten(ctx, db, sc.JobExecutionID)
		if err != nil {
			return batch.Finished, err
		}
		n, err := mergeExport(ctx, d.Store, db, e, k, written)
		if err != nil {
			return batch.Finished, err
		}
		sc.Counts.Read, sc.Counts.Write = n, n
		return batch.Finished, nil
	}
}

// partsWritten is how many rows the parts step's partitions committed
// over every execution of jeID's instance (a restart resumes the
// partitions from their checkpoints, so each row is counted once).
func partsWritten(ctx context.Context, db bun.IDB, jeID int64) (int64, error) {
	var n int64
	if err := db.NewRaw(`SELECT coalesce(sum(s.write_count), 0) FROM batch_job_execution j
		JOIN batch_job_execution o ON o.job_instance_id = j.job_instance_id AND o.job_execution_id <= j.job_execution_id
		JOIN batch_step_execution s ON s.job_execution_id = o.job_execution_id
		WHERE j.job_execution_id = ? AND s.step_name LIKE 'parts:partition%' AND s.parent_step_execution_id IS NOT NULL`, jeID).Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("count the rows the parts hold: %w", err)
	}
	return n, nil
}

// removeParts deletes the export's part files once its merge committed;
// run again, it finds fewer or none.
func removeParts(d Deps) batch.IOTasklet {
	return func(ctx context.Context, db bun.IDB, sc *batch.StepContext) (batch.RepeatStatus, error) {
		id, _ := sc.Params.Int(ParamExportID, 0)
		parts, err := d.Store.List(ctx, partsPrefix(id))
		if err != nil {
			return batch.Finished, err
		}
		for _, p := range parts {
			if err := d.Store.Delete(ctx, p.Key); err != nil {
				return batch.Finished, err
			}
		}
		sc.Counts.Write = int64(len(parts))
		return batch.Finished, nil
	}
}

// cleanupParts runs after a failed merge. The parts stay when a restart
// can use them (the store was down, the upload broke off); they are
// removed when no restart can: a part is unreadable (the partitions that
// wrote it are COMPLETED and will not write it again), the export has
// expired, or an identical request has started a new export meanwhile.
func cleanupParts(d Deps) batch.IOTasklet {
	return func(ctx context.Context, db bun.IDB, sc *batch.StepContext) (batch.RepeatStatus, error) {
		id, _ := sc.Params.Int(ParamExportID, 0)
		var why string
		err := db.NewRaw(`SELECT CASE
				WHEN m.exit_message LIKE '%' || ? || '%' THEN 'a part is unreadable'
				WHEN m.exit_message LIKE '%' || ? || '%' THEN 'the parts miss rows'
				WHEN x.status = 'EXPIRED' THEN 'the export has expired'
				WHEN EXISTS (SELECT 1 FROM export o WHERE o.filter_hash = x.filter_hash AND o.id > x.id AND o.status <> 'EXPIRED') THEN 'a newer export replaces it'
				ELSE '' END
			FROM export x, batch_step_execution m
			WHERE x.id = ? AND m.job_execution_id = ? AND m.step_name = 'merge' AND m.parent_step_execution_id IS NULL`,
			errBadPart.Error(), errMissingRows.Error(), id, sc.JobExecutionID).Scan(ctx, &why)
		if err != nil {
			return batch.Finished, fmt.Errorf("decide the cleanup of export %d: %w", id, err)
		}
		if why == "" {
			sc.ExitStatus = "PARTS KEPT"
			return batch.Finished, nil
		}
		parts, err := d.Store.List(ctx, partsPrefix(id))
		if err != nil {
			return batch.Finished, err
		}
		for _, p := range parts {
			if err := d.Store.Delete(ctx, p.Key); err != nil {
				return batch.Finished, err
			}
		}
		d.Logger.WarnContext(ctx, "export parts removed after a failed merge", "export_id", id, "parts", len(parts), "why", why)
		sc.Counts.Write = int64(len(parts))
		sc.ExitStatus = "PARTS REMOVED"
		return batch.Finished, nil
	}
}

// partName is a partition's place in the merge order: its range start,
// zero-padded so that names sort like numbers.
func partName(sc *batch.StepContext) string {
	return fmt.Sprintf("%020d", uint64(sc.Range.Start)^(1<<63))
}

// exportReader reads an export's rows by key.
type exportReader struct{ cache *exportCache }

// Read reads the partition's next rows by COPY, a window of keys at a
// time: about as many keys as the partition's last chunk spread its
// limit rows over, widened until it finds limit rows or reaches to. A
// query over the partition's whole rest with a LIMIT read it all when
// the table's rows were no longer in key order (after many updates:
// Postgres then takes a bitmap scan and a sort), 1.6x a window's time.
func (r exportReader) Read(ctx context.Context, db bun.IDB, sc *batch.StepContext, from, to int64, limit int) ([]exportRow, error) {
	x, err := r.cache.get(ctx, db, sc)
	if err != nil {
		return nil, err
	}
	shape := r.cache.shape(sc.StepExecutionID)
	span := shape.span(limit)
	var rows []exportRow
	for start := from; start < to && len(rows) < limit; span = min(span, math.MaxInt64/2) * 2 {
		end := to
		if to-start > span {
			end = start + span
		}
		got, err := copyRows(ctx, db, x, start, end, limit-len(rows), shape.sizeFor(limit-len(rows)))
		if err != nil {
			return nil, err
		}
		if rows == nil {
			rows = got
		} else {
			rows = append(rows, got...)
		}
		start = end
	}
	r.cache.remember(sc.StepExecutionID, rows, from)
	return rows, nil
}

// chunkShape is what a partition's last chunk looked like: how many keys
// and COPY bytes its rows took, for sizing the next read.
type chunkShape struct {
	rows, keys, size int64
}

// span is how many keys the next window covers for limit rows: an eighth
// more than the last chunk needed, limit+limit/8 before the first.
func (s chunkShape) span(limit int) int64 {
	if s.rows == 0 {
		return int64(limit + limit/8)
	}
	// In floats: keys times limit overflows an int64 past 2^48 keys.
	return int64(max(min(float64(s.keys)/float64(s.rows)*float64(limit)*9/8, math.MaxInt64/2), 1))
}

// sizeFor is about how many bytes COPY writes for n rows (0: unknown).
func (s chunkShape) sizeFor(n int) int {
	if s.rows == 0 {
		return 0
	}
	return int(s.size * int64(n) / s.rows * 9 / 8)
}

// loadedExport is an export's row with its kind and filter.
type loadedExport struct {
	export *models.Export
	kind   exportKind
	filter ExportFilter
}

// exportCache keeps each partition's export (by step execution), so a
// partition loads it once, not once a chunk, and its last chunk's shape,
// which sizes the next chunk's key window and buffer. It holds at most
// exportCacheSize partitions; past that it starts over.
type exportCache struct {
	mu     sync.Mutex
	m      map[int64]loadedExport
	shapes map[int64]chunkShape
	loads  int // how many times it went to the database (tests)
}

// shape is the partition's last chunk's shape (zero before its first).
func (c *exportCache) shape(stepExecutionID int64) chunkShape {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shapes[stepExecutionID]
}

// remember keeps the shape of the chunk read from key from as its rows.
func (c *exportCache) remember(stepExecutionID int64, rows []exportRow, from int64) {
	if len(rows) == 0 {
		return
	}
	s := chunkShape{rows: int64(len(rows)), keys: rows[len(rows)-1].ID - from + 1}
	for _, row := range rows {
		s.size += int64(len(row.Line)) + 8 // and its key
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shapes == nil || len(c.shapes) >= exportCacheSize {
		c.shapes = map[int64]chunkShape{}
	}
	c.shapes[stepExecutionID] = s
}

const exportCacheSize = 256

func (c *exportCache) get(ctx context.Context, db bun.IDB, sc *batch.StepContext) (loadedExport, error) {
	c.mu.Lock()
	x, ok := c.m[sc.StepExecutionID]
	c.mu.Unlock()
	if ok {
		return x, nil
	}
	e, k, f, err := loadExport(ctx, db, sc)
	if err != nil {
		return x, err
	}
	x = loadedExport{e, k, f}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= exportCacheSize {
		c.m = map[int64]loadedExport{}
	}
	c.m[sc.StepExecutionID] = x
	c.loads++
	return x, nil
}

func (exportReader) Key(r exportRow) int64 { return r.ID }

func ptrTo[T any](v T) *T { return &v }
