package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/tasks"
)

// exportView is an export with its progress (rows written / total).
type exportView struct {
	models.Export
	Progress float64 `json:"progress"`
}

func viewExport(e models.Export) exportView {
	v := exportView{Export: e}
	if e.TotalRows != nil && *e.TotalRows > 0 {
		v.Progress = float64(e.WrittenRows) / float64(*e.TotalRows)
		if v.Progress > 1 {
			v.Progress = 1
		}
	}
	if e.Status == models.ExportCompleted {
		v.Progress = 1
	}
	return v
}

// requestExport records the request and launches its job when it is new.
func (s *server) requestExport(c *fiber.Ctx, req tasks.ExportRequest) (*models.Export, bool, error) {
	ctx := c.UserContext()
	id := who(c)
	by := id.Name
	if id.UserID != 0 {
		by = fmt.Sprintf("user %d (%s)", id.UserID, id.Name)
	}
	e, created, err := tasks.RequestExport(ctx, s.o.DB, req, by, s.o.Now())
	var fe *tasks.FieldError
	if errors.As(err, &fe) {
		return nil, false, invalid(fe.Field, fe.Message)
	}
	if err != nil {
		return nil, false, err
	}
	if created {
		_, err := s.o.Engine.Launch(ctx, tasks.JobExport, batch.Params{tasks.ParamExportID: {Value: strconv.FormatInt(e.ID, 10), Identifying: true}})
		if err != nil && !errors.Is(err, batch.ErrAlreadyRunning) {
			return nil, false, err
		}
	}
	return e, created, nil
}

func (s *server) exportRoutes(a fiber.Router) {
	a.Post("/exports", func(c *fiber.Ctx) error {
		var req tasks.ExportRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		e, created, err := s.requestExport(c, req)
		if err != nil {
			return err
		}
		c.Set("Export-Created", strconv.FormatBool(created))
		return c.Status(fiber.StatusAccepted).JSON(viewExport(*e))
	})
	a.Get("/exports", func(c *fiber.Ctx) error {
		limit, after, err := page(c)
		if err != nil {
			return err
		}
		out, err := s.exports(c, after, limit)
		if err != nil {
			return err
		}
		return c.JSON(list(out, func(e exportView) int64 { return e.ID }, limit))
	})
	a.Get("/exports/:id", func(c *fiber.Ctx) error {
		e, err := s.export(c)
		if err != nil {
			return err
		}
		return c.JSON(viewExport(*e))
	})
	a.Get("/exports/:id/download", s.downloadExport)
}

func (s *server) exports(c *fiber.Ctx, before int64, limit int) ([]exportView, error) {
	var rows []models.Export
	q := s.o.DB.NewSelect().Model(&rows).Order("id DESC").Limit(int64(limit))
	if before > 0 {
		q = q.Where("id < ?", before)
	}
	if err := q.Scan(c.UserContext()); err != nil {
		return nil, err
	}
	out := make([]exportView, len(rows))
	for i, e := range rows {
		out[i] = viewExport(e)
	}
	return out, nil
}

func (s *server) export(c *fiber.Ctx) (*models.Export, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return nil, err
	}
	var e models.Export
	if err := s.o.DB.NewSelect().Model(&e).Where("id = ?", id).Scan(c.UserContext()); err != nil {
		return nil, notFound("export")
	}
	return &e, nil
}

// downloadExport streams a finished export with Content-Disposition and
// Range support (http.ServeContent); 409 while it is not finished.
func (s *server) downloadExport(c *fiber.Ctx) error {
	e, err := s.export(c)
	if err != nil {
		return err
	}
	if e.Status != models.ExportCompleted || e.FileKey == nil {
		return &APIError{Status: fiber.StatusConflict, Code: "conflict", Message: "the export is " + e.Status + "; download it when it is COMPLETED"}
	}
	f, err := s.o.Store.Open(c.UserContext(), *e.FileKey)
	if err != nil {
		return notFound("export file")
	}
	name := fmt.Sprintf("passbatch-%s-%d.%s", e.Kind, e.ID, e.Format)
	ctype := "text/csv; charset=utf-8"
	if e.Format == "xlsx" {
		ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	return adaptor.HTTPHandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer f.Close()
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, name))
		if e.SHA256 != nil {
			w.Header().Set("ETag", `"`+*e.SHA256+`"`)
		}
		http.ServeContent(w, r, name, e.ModifiedAt, f)
	})(c)
}

func (s *server) pageExports(c *fiber.Ctx) error {
	out, err := s.exports(c, 0, 50)
	if err != nil {
		return err
	}
	running := false
	for _, e := range out {
		if e.Status == models.ExportPending || e.Status == models.ExportRunning {
			running = true
		}
	}
	return c.Render("exports", s.view(c, dict[lang(c)]["exports"], fiber.Map{
		"Exports": out, "Refresh": running, "Error": c.Query("error"), "OK": c.Query("ok"),
	}), "layout")
}

func (s *server) pageExportCreate(c *fiber.Ctx) error {
	req := tasks.ExportRequest{Kind: c.FormValue("kind"), Format: c.FormValue("format"), Force: c.FormValue("force") == "on"}
	parse := func(field string) (*time.Time, error) {
		v := c.FormValue(field)
		if v == "" {
			return nil, nil
		}
		t, err := time.ParseInLocation("2006-01-02", v, seoulZone)
		if err != nil {
			return nil, fmt.Errorf("%s: a date", field)
		}
		return &t, nil
	}
	var err error
	if req.Filter.From, err = parse("from"); err != nil {
		return c.Redirect("/admin/exports?error=" + urlQuery(err.Error()))
	}
	if req.Filter.To, err = parse("to"); err != nil {
		return c.Redirect("/admin/exports?error=" + urlQuery(err.Error()))
	}
	req.Filter.Status = c.FormValue("status")
	e, _, err := s.requestExport(c, req)
	var ae *APIError
	if errors.As(err, &ae) {
		return c.Redirect("/admin/exports?error=" + urlQuery(ae.Field+": "+ae.Message))
	}
	if err != nil {
		return err
	}
	return c.Redirect(fmt.Sprintf("/admin/exports?ok=%d", e.ID))
}
