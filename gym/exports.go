package gym

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
)

// Export is an export with its progress, rows written over rows to write.
type Export struct {
	models.Export
	Progress float64 `json:"progress"`
}

func exportOf(e models.Export) Export {
	v := Export{Export: e}
	if e.TotalRows != nil && *e.TotalRows > 0 {
		v.Progress = min(float64(e.WrittenRows)/float64(*e.TotalRows), 1)
	}
	if e.Status == models.ExportCompleted {
		v.Progress = 1
	}
	return v
}

// RequestExport records an export request for by and launches its job when
// the request is new; an identical one running, or finished within its
// retention (unless Force), is returned instead (created false).
func (s *Service) RequestExport(ctx context.Context, r tasks.ExportRequest, by string) (Export, bool, error) {
	e, created, err := tasks.RequestExport(ctx, s.DB, r, by, s.now())
	if err != nil {
		return Export{}, false, err
	}
	// A PENDING export with no job yet is launched again: the process that
	// recorded it may have died before its launch (a repeat finds the job
	// running, which is harmless).
	if created || (e.Status == models.ExportPending && e.JobExecutionID == nil) {
		if err := s.launchExport(ctx, e.ID); err != nil {
			return Export{}, false, err
		}
	}
	return exportOf(*e), created, nil
}

// launchExport launches export id's job. When the launch fails before any
// execution exists, the export is marked FAILED with the reason, so it is
// not returned to every identical request as PENDING forever.
func (s *Service) launchExport(ctx context.Context, id int64) error {
	je, err := s.Engine.Launch(ctx, tasks.JobExport, batch.Params{tasks.ParamExportID: {Value: strconv.FormatInt(id, 10), Identifying: true}})
	if err == nil || je != nil || errors.Is(err, batch.ErrAlreadyRunning) {
		return nil // running, or created and left to the reconciler to start
	}
	if _, ferr := s.DB.NewUpdate().Model((*models.Export)(nil)).Set("status = ?", models.ExportFailed).
		Set("error = ?", "could not start: "+err.Error()).Set("modified_at = now()").
		Where("id = ? AND status = ?", id, models.ExportPending).Exec(ctx); ferr != nil {
		s.log().ErrorContext(ctx, "an export whose launch failed could not be marked FAILED", "export_id", id, "err", ferr)
	}
	return fmt.Errorf("launch export %d: %w", id, err)
}

// Exports lists exports newest first, before the id p.After.
func (s *Service) Exports(ctx context.Context, p Page) ([]Export, error) {
	var rows []models.Export
	q := s.DB.NewSelect().Model(&rows).Order("id DESC").Limit(int64(p.limit()))
	if p.After > 0 {
		q = q.Where("id < ?", p.After)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	if err := tasks.FillWrittenRows(ctx, s.DB, rows); err != nil {
		return nil, err
	}
	out := make([]Export, len(rows))
	for i, e := range rows {
		out[i] = exportOf(e)
	}
	return out, nil
}

// Export returns export id.
func (s *Service) Export(ctx context.Context, id int64) (Export, error) {
	var e models.Export
	err := s.DB.NewSelect().Model(&e).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Export{}, notFound("export")
	}
	if err != nil {
		return Export{}, fmt.Errorf("load export %d: %w", id, err)
	}
	es := []models.Export{e}
	if err := tasks.FillWrittenRows(ctx, s.DB, es); err != nil {
		return Export{}, err
	}
	return exportOf(es[0]), nil
}

// OpenExport opens the file of a COMPLETED export (ErrConflict before);
// the caller closes it.
func (s *Service) OpenExport(ctx context.Context, id int64) (Export, storage.ReadSeekCloser, storage.Info, error) {
	e, err := s.Export(ctx, id)
	if err != nil {
		return e, nil, storage.Info{}, err
	}
	if e.Status != models.ExportCompleted || e.FileKey == nil {
		return e, nil, storage.Info{}, fmt.Errorf("%w: the export is %s; download it when it is COMPLETED", ErrConflict, e.Status)
	}
	info, err := s.Store.Stat(ctx, *e.FileKey)
	if err == nil {
		var f storage.ReadSeekCloser
		if f, err = s.Store.Open(ctx, *e.FileKey); err == nil {
			return e, f, info, nil
		}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return e, nil, info, notFound("export file")
	}
	return e, nil, info, err
}

// Reports lists the statistics reports.
func (s *Service) Reports(ctx context.Context) ([]storage.Info, error) {
	out, err := tasks.ListReports(ctx, s.Store)
	if out == nil {
		out = []storage.Info{}
	}
	return out, err
}

// OpenReport opens the report named name (a key under the report prefix).
func (s *Service) OpenReport(ctx context.Context, name string) (storage.ReadSeekCloser, storage.Info, error) {
	key := tasks.ReportPrefix + name
	info, err := s.Store.Stat(ctx, key)
	if err == nil {
		var f storage.ReadSeekCloser
		if f, err = s.Store.Open(ctx, key); err == nil {
			return f, info, nil
		}
	}
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrBadKey) {
		return nil, info, notFound("report")
	}
	return nil, info, err
}
