package tasks

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/xuri/excelize/v2"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/notify"
	"github.com/passbatch/passbatch/storage"
)

// JobExport produces an export's file.
const JobExport = "export"

// ParamExportID names the export an export job produces.
const ParamExportID = "export_id"

// ExportRetention is how long a finished export is offered again and kept.
const ExportRetention = 7 * 24 * time.Hour

// xlsxMaxRows is an XLSX sheet's row limit; the header takes one.
const xlsxMaxRows = 1_048_576

// ExportFilter narrows an export. Zero fields match everything.
type ExportFilter struct {
	From        *time.Time `json:"from,omitempty"`
	To          *time.Time `json:"to,omitempty"`
	Status      string     `json:"status,omitempty"`
	UserGroupID *int64     `json:"user_group_id,omitempty"`
}

// ExportRequest is an admin's request for a download.
type ExportRequest struct {
	Kind   string       `json:"kind"`
	Format string       `json:"format"`
	Filter ExportFilter `json:"filter"`
	// Force starts a new export even when an identical one finished
	// within the retention window.
	Force bool `json:"force"`
}

// exportKind describes one kind of export: its columns and its rows.
type exportKind struct {
	table    string // keyset table alias
	columns  []string
	types    []string // text, int, time, bool: how XLSX writes a cell
	cells    string   // SQL array of the row's cells as text
	from     string   // FROM … (with joins)
	timeCol  string   // what from/to filter
	statuses []string
}

// utcText is SQL for a timestamp column as RFC 3339 UTC text, ” for NULL.
func utcText(col string) string {
	return "coalesce(to_char(" + col + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), '')`
}

var exportKinds = map[string]exportKind{
	"bookings": {
		table:   "b",
		columns: []string{"id", "user_id", "user_name", "pass_id", "status", "attended", "used_pass", "started_at", "ended_at", "cancelled_at"},
		types:   []string{"int", "int", "text", "int", "text", "bool", "bool", "time", "time", "time"},
		cells: `ARRAY[b.id::text, b.user_id::text, u.name, b.pass_id::text, b.status, b.attended::text, b.used_pass::text,
			` + utcText("b.started_at") + `, ` + utcText("b.ended_at") + `,
			` + utcText("b.cancelled_at") + `]`,
		from:     "booking AS b JOIN users AS u ON u.id = b.user_id",
		timeCol:  "b.started_at",
		statuses: []string{models.BookingReady, models.BookingCompleted, models.BookingCancelled},
	},
	"passes": {
		table:   "p",
		columns: []string{"id", "user_id", "user_name", "package", "status", "remaining_count", "started_at", "ended_at", "expired_at"},
		types:   []string{"int", "int", "text", "text", "text", "int", "time", "time", "time"},
		cells: `ARRAY[p.id::text, p.user_id::text, u.name, k.name, p.status, coalesce(p.remaining_count::text, ''),
			` + utcText("p.started_at") + `, ` + utcText("p.ended_at") + `,
			` + utcText("p.expired_at") + `]`,
		from:     "pass AS p JOIN users AS u ON u.id = p.user_id JOIN package AS k ON k.id = p.package_id",
		timeCol:  "p.started_at",
		statuses: []string{models.PassReady, models.PassProgressed, models.PassExpired},
	},
	"statistics": {
		table:   "s",
		columns: []string{"statistics_at", "all_count", "attended_count", "cancelled_count"},
		types:   []string{"time", "int", "int", "int"},
		cells: `ARRAY[` + utcText("s.statistics_at") + `, s.all_count::text,
			s.attended_count::text, s.cancelled_count::text]`,
		from:    "statistics AS s",
		timeCol: "s.statistics_at",
	},
}

// Validate checks r and returns its normalized filter JSON and the hash
// that identifies identical requests.
func (r *ExportRequest) Validate() (filterJSON []byte, hash string, err error) {
	k, ok := exportKinds[r.Kind]
	if !ok {
		return nil, "", &FieldError{"kind", "passes, bookings or statistics"}
	}
	if r.Format != "xlsx" && r.Format != "csv" {
		return nil, "", &FieldError{"format", "xlsx or csv"}
	}
	f := r.Filter
	if f.From != nil && f.To != nil && !f.From.Before(*f.To) {
		return nil, "", &FieldError{"filter.to", "must be after filter.from"}
	}
	if f.Status != "" {
		found := false
		for _, s := range k.statuses {
			found = found || s == strings.ToUpper(f.Status)
		}
		if !found {
			return nil, "", &FieldError{"filter.status", "not a status of " + r.Kind}
		}
		f.Status = strings.ToUpper(f.Status)
	}
	if f.UserGroupID != nil && (r.Kind == "statistics" || *f.UserGroupID <= 0) {
		return nil, "", &FieldError{"filter.user_group_id", "a group id, for passes or bookings"}
	}
	if f.From != nil {
		t := f.From.UTC()
		f.From = &t
	}
	if f.To != nil {
		t := f.To.UTC()
		f.To = &t
	}
	r.Filter = f
	filterJSON, _ = json.Marshal(f)
	sum := sha256.Sum256([]byte(r.Kind + "|" + r.Format + "|" + string(filterJSON)))
	return filterJSON, hex.EncodeToString(sum[:]), nil
}

// RequestExport records an export request. While an identical request is
// PENDING or RUNNING it returns that one (a partial unique index makes this
// hold under concurrent requests); an identical COMPLETED one still within
// its retention is returned too unless Force. created says whether a new
// export was made, for which the caller launches the export job.
func RequestExport(ctx context.Context, db bun.IDB, r ExportRequest, by string, now time.Time) (*models.Export, bool, error) {
	filterJSON, hash, err := r.Validate()
	if err != nil {
		return nil, false, err
	}
	if r.Filter.UserGroupID != nil {
		ok, err := db.NewSelect().Model((*models.UserGroup)(nil)).Where("id = ?", *r.Filter.UserGroupID).Exists(ctx)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			return nil, false, &FieldError{"filter.user_group_id", "no such group"}
		}
	}
	if !r.Force {
		var done models.Export
		err := db.NewSelect().Model(&done).Where("filter_hash = ? AND status = ? AND expires_at > ?", hash, models.ExportCompleted, now).
			Order("id DESC").Limit(1).Scan(ctx)
		if err == nil {
			return &done, false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, false, err
		}
	}
	e := &models.Export{RequestedBy: by, Kind: r.Kind, Format: r.Format, Filter: filterJSON, FilterHash: hash, Status: models.ExportPending}
	res, err := db.NewInsert().Model(e).On("CONFLICT (filter_hash) WHERE status IN ('PENDING', 'RUNNING') DO NOTHING").Returning("*").Exec(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("record export: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return e, true, nil
	}
	var running models.Export
	if err := db.NewSelect().Model(&running).Where("filter_hash = ? AND status IN (?, ?)", hash, models.ExportPending, models.ExportRunning).
		Limit(1).Scan(ctx); err != nil {
		return nil, false, fmt.Errorf("load the running export: %w", err)
	}
	return &running, false, nil
}

// ExpireExports marks COMPLETED exports past their retention, and FAILED
// ones not restarted within it, EXPIRED and removes their files (the file
// and any part files left by a failure). It runs before every export job,
// outside any transaction: the files go first, then the status, so a crash
// in between only repeats the (idempotent) removal next time.
func ExpireExports(ctx context.Context, db bun.IDB, store storage.Store, now time.Time) (int, error) {
	const due = `(status = 'COMPLETED' AND expires_at <= ?) OR (status = 'FAILED' AND modified_at <= ?)`
	var ids []int64
	if err := db.NewRaw(`SELECT id FROM export WHERE `+due+` ORDER BY id`, now, now.Add(-ExportRetention)).Scan(ctx, &ids); err != nil {
		return 0, fmt.Errorf("find expired exports: %w", err)
	}
	for _, id := range ids {
		files, err := store.List(ctx, fmt.Sprintf("exports/%d/", id))
		if err != nil {
			return 0, fmt.Errorf("expire export %d: %w", id, err)
		}
		for _, f := range files {
			if err := store.Delete(ctx, f.Key); err != nil {
				return 0, fmt.Errorf("expire export %d: %w", id, err)
			}
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := exec(ctx, db, "expire exports", `UPDATE export SET status = 'EXPIRED', modified_at = now() WHERE id = ANY(?) AND (`+due+`)`,
		pgdialect.Array(ids), now, now.Add(-ExportRetention))
	return int(n), err
}

// exportRow is one row of an export: its key and its cells as text.
type exportRow struct {
	ID    int64    `bun:"id"`
	Cells []string `bun:"cells,array"`
}

func loadExport(ctx context.Context, db bun.IDB, sc *batch.StepContext) (*models.Export, exportKind, ExportFilter, error) {
	id, _ := sc.Params.Int(ParamExportID, 0)
	var e models.Export
	if err := db.NewSelect().Model(&e).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, exportKind{}, ExportFilter{}, fmt.Errorf("load export %d: %w", id, err)
	}
	if e.Status == models.ExportExpired {
		// Its part files are gone: a restart cannot resume it.
		return nil, exportKind{}, ExportFilter{}, fmt.Errorf("export %d has expired and its files are removed; request it again", id)
	}
	var f ExportFilter
	if err := json.Unmarshal(e.Filter, &f); err != nil {
		return nil, exportKind{}, ExportFilter{}, fmt.Errorf("export %d filter: %w", id, err)
	}
	return &e, exportKinds[e.Kind], f, nil
}

// where applies an export's filter to a query over its kind.
func (k exportKind) where(q *bun.SelectQuery, f ExportFilter) *bun.SelectQuery {
	if f.From != nil {
		q = q.Where("? >= ?", bun.Safe(k.timeCol), *f.From)
	}
	if f.To != nil {
		q = q.Where("? < ?", bun.Safe(k.timeCol), *f.To)
	}
	if f.Status != "" {
		q = q.Where("?.status = ?", bun.Safe(k.table), f.Status)
	}
	if f.UserGroupID != nil {
		q = q.Where("?.user_id IN (SELECT user_id FROM user_group_mapping WHERE user_group_id = ?)", bun.Safe(k.table), *f.UserGroupID)
	}
	return q
}

func (k exportKind) keyCol() string { return k.table + ".id" }

// ExportJob declares export: count → parts (partitioned: each chunk's rows
// become one CSV part file, named by its partition and first key, so a
// redone chunk rewrites its own part) → merge (the parts in key order into
// one CSV, or XLSX streamed with sheets of at most 1,048,575 rows; stored
// with size and SHA-256; parts deleted). An after-job listener marks the
// export COMPLETED or FAILED with the reason, once. Restarting a failed
// export resumes from its finished partitions.
func ExportJob(d Deps) *batch.Job {
	filter := func(ctx context.Context, db bun.IDB, sc *batch.StepContext, q *bun.SelectQuery) (*bun.SelectQuery, error) {
		_, k, f, err := loadExport(ctx, db, sc)
		if err != nil {
			return nil, err
		}
		return k.where(q.TableExpr(k.from), f), nil
	}
	return &batch.Job{
		Name:        JobExport,
		Description: "데이터 내보내기: export passes, bookings or statistics to XLSX or CSV",
		Prepare: func(p batch.Params, now time.Time) (batch.Params, error) {
			if id, err := p.Int(ParamExportID, 0); err != nil || id <= 0 {
				return nil, fmt.Errorf("%w: export_id is required", batch.ErrInvalidParams)
			}
			return p, nil
		},
		Listeners: []batch.JobListener{{BeforeJob: func(ctx context.Context, tx bun.Tx, je *batch.JobExecution, p batch.Params) error {
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
		}}},
		Flow: []batch.Node{
			batch.NewIOTasklet("expire-old", func(ctx context.Context, db bun.IDB, sc *batch.StepContext) (batch.RepeatStatus, error) {
				n, err := ExpireExports(ctx, db, d.Store, time.Now())
				sc.Counts.Write = int64(n)
				return batch.Finished, err
			}).WithRetry(batch.RetryPolicy{Limit: 3}),
			batch.NewTasklet("count", func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
				e, k, f, err := loadExport(ctx, tx, sc)
				if err != nil {
					return batch.Finished, err
				}
				n, err := k.where(tx.NewSelect().TableExpr(k.from), f).Count(ctx)
				if err != nil {
					return batch.Finished, fmt.Errorf("count export rows: %w", err)
				}
				if _, err := exec(ctx, tx, "start export", `UPDATE export SET status = 'RUNNING', total_rows = ?, written_rows = 0,
					job_execution_id = ?, modified_at = now() WHERE id = ?`, n, sc.JobExecutionID, e.ID); err != nil {
					return batch.Finished, err
				}
				sc.Counts.Read, sc.Counts.Write = int64(n), 1
				return batch.Finished, nil
			}),
			batch.NewChunk("parts", batch.ChunkStep[exportRow, exportRow]{
				Reader: exportReader{filter: filter},
				Partitioner: func(ctx context.Context, db bun.IDB, sc *batch.StepContext) ([]batch.Range, error) {
					_, k, f, err := loadExport(ctx, db, sc)
					if err != nil {
						return nil, err
					}
					return batch.KeyRangePartitioner(k.from, k.keyCol(), d.Partitions, func(q *bun.SelectQuery, sc *batch.StepContext) *bun.SelectQuery {
						return k.where(q, f)
					})(ctx, db, sc)
				},
				ChunkSize: 5000,
				// A chunk's rows become one CSV part file, stored outside the
				// chunk transaction; one that cannot be stored (storage down,
				// disk full) is retried in place a few times before the step
				// fails, and a restart then resumes from the finished partitions.
				Retry: batch.RetryPolicy{Limit: 3},
				Emit: func(ctx context.Context, sc *batch.StepContext, rows []exportRow) error {
					var buf bytes.Buffer
					w := csv.NewWriter(&buf)
					for _, r := range rows {
						if err := w.Write(r.Cells); err != nil {
							return err
						}
					}
					w.Flush()
					id, _ := sc.Params.Int(ParamExportID, 0)
					// Named by where the chunk starts, so a redone chunk rewrites
					// its own part whatever rows it finds.
					key := fmt.Sprintf("exports/%d/parts/%s/%020d.csv", id, partName(sc), uint64(sc.ChunkStart)^(1<<63))
					_, err := d.Store.Put(ctx, key, &buf)
					return err
				},
				Writer: func(ctx context.Context, tx bun.Tx, sc *batch.StepContext, rows []exportRow) error {
					id, _ := sc.Params.Int(ParamExportID, 0)
					_, err := exec(ctx, tx, "count export rows", "UPDATE export SET written_rows = written_rows + ? WHERE id = ?", len(rows), id)
					return err
				},
			}),
			batch.NewIOTasklet("merge", func(ctx context.Context, db bun.IDB, sc *batch.StepContext) (batch.RepeatStatus, error) {
				e, k, _, err := loadExport(ctx, db, sc)
				if err != nil {
					return batch.Finished, err
				}
				n, err := mergeExport(ctx, d.Store, db, e, k)
				if err != nil {
					return batch.Finished, err
				}
				sc.Counts.Read, sc.Counts.Write = n, n
				return batch.Finished, nil
			}).WithRetry(batch.RetryPolicy{Limit: 3}),
		},
	}
}

// partName is a partition's place in the merge order: its range start,
// zero-padded so that names sort like numbers.
func partName(sc *batch.StepContext) string {
	return fmt.Sprintf("%020d", uint64(sc.Range.Start)^(1<<63))
}

// exportReader reads an export's rows by key.
type exportReader struct {
	filter func(ctx context.Context, db bun.IDB, sc *batch.StepContext, q *bun.SelectQuery) (*bun.SelectQuery, error)
}

func (r exportReader) Read(ctx context.Context, db bun.IDB, sc *batch.StepContext, from, to int64, limit int) ([]exportRow, error) {
	_, k, _, err := loadExport(ctx, db, sc)
	if err != nil {
		return nil, err
	}
	q, err := r.filter(ctx, db, sc, db.NewSelect())
	if err != nil {
		return nil, err
	}
	var rows []exportRow
	err = q.ColumnExpr("? AS id, ? AS cells", bun.Safe(k.keyCol()), bun.Safe(k.cells)).
		Where("? >= ? AND ? < ?", bun.Safe(k.keyCol()), from, bun.Safe(k.keyCol()), to).
		OrderExpr("? ASC", bun.Safe(k.keyCol())).Limit(int64(limit)).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("read export rows: %w", err)
	}
	return rows, nil
}

func (exportReader) Key(r exportRow) int64 { return r.ID }

// mergeExport joins the parts in key order into the export's file, stores
// it, records size, SHA-256 and rows, and deletes the parts. It runs outside
// any transaction; a repeat rewrites the same file.
func mergeExport(ctx context.Context, store storage.Store, db bun.IDB, e *models.Export, k exportKind) (int64, error) {
	prefix := fmt.Sprintf("exports/%d/parts/", e.ID)
	parts, err := store.List(ctx, prefix)
	if err != nil {
		return 0, err
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Key < parts[j].Key })
	key := fmt.Sprintf("exports/%d/%s-%d.%s", e.ID, e.Kind, e.ID, e.Format)
	pr, pw := io.Pipe()
	h := sha256.New()
	var rows int64
	go func() {
		var err error
		if e.Format == "csv" {
			rows, err = mergeCSV(ctx, store, parts, k, pw)
		} else {
			rows, err = mergeXLSX(ctx, store, parts, k, pw, xlsxMaxRows)
		}
		pw.CloseWithError(err)
	}()
	size, err := store.Put(ctx, key, io.TeeReader(pr, h))
	if err != nil {
		return 0, fmt.Errorf("store export %d: %w", e.ID, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if _, err := exec(ctx, db, "record export file", `UPDATE export SET file_key = ?, size_bytes = ?, sha256 = ?, written_rows = ?, modified_at = now() WHERE id = ?`,
		key, size, sum, rows, e.ID); err != nil {
		return 0, err
	}
	for _, p := range parts {
		_ = store.Delete(ctx, p.Key)
	}
	return rows, nil
}

func eachPartRow(ctx context.Context, store storage.Store, parts []storage.Info, fn func([]string) error) (int64, error) {
	var n int64
	for _, p := range parts {
		f, err := store.Open(ctx, p.Key)
		if err != nil {
			return n, err
		}
		r := csv.NewReader(bufio.NewReader(f))
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return n, fmt.Errorf("read part %s: %w", p.Key, err)
			}
			if err := fn(rec); err != nil {
				f.Close()
				return n, err
			}
			n++
		}
		f.Close()
	}
	return n, nil
}

func mergeCSV(ctx context.Context, store storage.Store, parts []storage.Info, k exportKind, w io.Writer) (int64, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(k.columns); err != nil {
		return 0, err
	}
	n, err := eachPartRow(ctx, store, parts, func(rec []string) error {
		return cw.Write(defuseFormulas(rec, k.types))
	})
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	return n, err
}

// defuseFormulas prefixes with ' every text cell a spreadsheet would take
// for a formula (starting with =, +, -, @, a tab or a CR), so a member
// named "=HYPERLINK(…)" is shown, not run, when an admin opens the CSV.
// Numbers and times are left alone. XLSX cells are typed and need no such
// care.
func defuseFormulas(rec, types []string) []string {
	for i, v := range rec {
		if i < len(types) && types[i] == "text" && v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			rec[i] = "'" + v
		}
	}
	return rec
}

// mergeXLSX streams the parts into one workbook, maxRows rows a sheet
// (header included), rolling over to Sheet2, Sheet3…. Excel cells have no
// time zone, so times are written as the gym's wall clock (Asia/Seoul) and
// their headers say so; CSV keeps RFC 3339 instants.
func mergeXLSX(ctx context.Context, store storage.Store, parts []storage.Info, k exportKind, w io.Writer, maxRows int) (int64, error) {
	f := excelize.NewFile()
	defer f.Close()
	// excelize's WriteTo builds the whole package in a bytes.Buffer (to patch
	// zip64 headers afterwards), which for a million rows is ~100 MB more
	// than the stream writers' temp files. Point its zip writer at w
	// instead: the sheets are copied from their temp files straight to the
	// output and the buffer stays empty. Our sheets stay far below 4 GiB, so
	// the zip64 patch never applies.
	// Deflate at BestSpeed: the default level spent about half of the merge
	// (the export's serial tail) in match finding; BestSpeed halves the
	// merge for a 34% bigger file, still 40% smaller than the CSV
	// (BenchmarkMergeXLSX).
	f.SetZipWriter(func(io.Writer) excelize.ZipWriter {
		zw := zip.NewWriter(w)
		zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
			return flate.NewWriter(out, flate.BestSpeed)
		})
		return zw
	})
	bold, _ := f.NewStyle(&excelize.Style{Font: &excelize.Font{Bold: true}})
	dateStyle, _ := f.NewStyle(&excelize.Style{CustomNumFmt: ptrTo("yyyy-mm-dd hh:mm:ss")})
	var sw *excelize.StreamWriter
	sheet, row := 0, 0
	newSheet := func() error {
		if sw != nil {
			if err := sw.Flush(); err != nil {
				return err
			}
		}
		sheet++
		name := fmt.Sprintf("Sheet%d", sheet)
		if sheet > 1 {
			if _, err := f.NewSheet(name); err != nil {
				return err
			}
		}
		var err error
		if sw, err = f.NewStreamWriter(name); err != nil {
			return err
		}
		for i := range k.columns {
			width := 14.0
			if k.types[i] == "time" {
				width = 28
			}
			if err := sw.SetColWidth(i+1, i+1, width); err != nil {
				return err
			}
		}
		hdr := make([]any, len(k.columns))
		for i, c := range k.columns {
			if k.types[i] == "time" {
				c += " (" + models.Seoul.String() + ")"
			}
			hdr[i] = excelize.Cell{StyleID: bold, Value: c}
		}
		row = 1
		return sw.SetRow("A1", hdr)
	}
	if err := newSheet(); err != nil {
		return 0, err
	}
	n, err := eachPartRow(ctx, store, parts, func(rec []string) error {
		if row >= maxRows {
			if err := newSheet(); err != nil {
				return err
			}
		}
		row++
		cells := make([]any, len(rec))
		for i, v := range rec {
			cells[i] = xlsxCell(k.types[i], v, dateStyle)
		}
		cell, _ := excelize.CoordinatesToCellName(1, row)
		return sw.SetRow(cell, cells)
	})
	if err != nil {
		return n, err
	}
	if err := sw.Flush(); err != nil {
		return n, err
	}
	if _, err = f.WriteTo(io.Discard); err != nil {
		return n, fmt.Errorf("write xlsx: %w", err)
	}
	return n, nil
}

func xlsxCell(typ, v string, dateStyle int) any {
	if v == "" {
		return nil
	}
	switch typ {
	case "int":
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	case "bool":
		return v == "true"
	case "time":
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			// The Seoul wall clock as a zone-less serial date.
			t = t.In(models.Seoul)
			wall := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
			return excelize.Cell{StyleID: dateStyle, Value: wall}
		}
	}
	return v
}

func ptrTo[T any](v T) *T { return &v }
