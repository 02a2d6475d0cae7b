package tasks

// Export requests: what an admin asks for, checked, deduplicated against
// identical requests, and recorded.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/models"
)

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
	// BOM says whether a CSV file starts with a UTF-8 byte order mark,
	// which Excel needs to read Korean right when the file is opened by
	// double-click; nil means yes. False is for machines that read the
	// file. XLSX files take no BOM and ignore it.
	BOM *bool `json:"bom,omitempty"`
}

// withBOM says whether r's file starts with a UTF-8 byte order mark.
func (r *ExportRequest) withBOM() bool {
	return r.Format == "csv" && (r.BOM == nil || *r.BOM)
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
	id := r.Kind + "|" + r.Format + "|" + string(filterJSON)
	if r.Format == "csv" && !r.withBOM() {
		id += "|nobom" // a different file; the default keeps its old hash
	}
	sum := sha256.Sum256([]byte(id))
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
	e := &models.Export{RequestedBy: by, Kind: r.Kind, Format: r.Format, Filter: filterJSON, FilterHash: hash, Status: models.ExportPending,
		BOM: r.withBOM()}
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

// FillWrittenRows sets WrittenRows of the RUNNING exports in es from their
// job's partitions (the rows of the chunks committed so far): the export
// row itself is only written at the start and the end of its job.
func FillWrittenRows(ctx context.Context, db bun.IDB, es []models.Export) error {
	var ids []int64
	for _, e := range es {
		if e.Status == models.ExportRunning && e.JobExecutionID != nil {
			ids = append(ids, *e.JobExecutionID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var sums []struct {
		JobExecutionID int64 `bun:"job_execution_id"`
		Written        int64 `bun:"written"`
	}
	// A restart resumes its partitions from their checkpoints, so the
	// rows written are the sum over every execution of the instance.
	if err := db.NewRaw(`SELECT j.job_execution_id, sum(s.write_count) AS written FROM batch_job_execution j
		JOIN batch_job_execution o ON o.job_instance_id = j.job_instance_id AND o.job_execution_id <= j.job_execution_id
		JOIN batch_step_execution s ON s.job_execution_id = o.job_execution_id
		WHERE j.job_execution_id IN (?) AND s.step_name LIKE 'parts:partition%' AND s.parent_step_execution_id IS NOT NULL
		GROUP BY j.job_execution_id`,
		bun.In(ids)).Scan(ctx, &sums); err != nil {
		return fmt.Errorf("export progress: %w", err)
	}
	written := make(map[int64]int64, len(sums))
	for _, s := range sums {
		written[s.JobExecutionID] = s.Written
	}
	for i := range es {
		if es[i].Status == models.ExportRunning && es[i].JobExecutionID != nil {
			es[i].WrittenRows = written[*es[i].JobExecutionID]
		}
	}
	return nil
}
