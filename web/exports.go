package web

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
	"github.com/passbatch/passbatch/models"
)

func (s *server) exportRoutes(a fiber.Router) {
	a.Post("/exports", func(c *fiber.Ctx) error {
		var req gym.ExportRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		e, created, err := s.gym.RequestExport(c.UserContext(), req, requester(c))
		if err != nil {
			return err
		}
		c.Set("Export-Created", strconv.FormatBool(created))
		return c.Status(fiber.StatusAccepted).JSON(e)
	})
	a.Get("/exports", func(c *fiber.Ctx) error {
		p, err := pageOf(c)
		if err != nil {
			return err
		}
		out, err := s.gym.Exports(c.UserContext(), p)
		if err != nil {
			return err
		}
		return c.JSON(list(out, func(e gym.Export) int64 { return e.ID }, p))
	})
	a.Get("/exports/:id", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		e, err := s.gym.Export(c.UserContext(), id)
		if err != nil {
			return err
		}
		return c.JSON(e)
	})
	a.Get("/exports/:id/download", s.downloadExport)
}

// requester names who asks, for the export's record.
func requester(c *fiber.Ctx) string {
	id := who(c)
	if id.UserID != 0 {
		return fmt.Sprintf("user %d (%s)", id.UserID, id.Name)
	}
	return id.Name
}

// downloadExport streams a finished export (Range, ETag); 409 while it is
// not finished.
func (s *server) downloadExport(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	e, f, info, err := s.gym.OpenExport(c.UserContext(), id)
	if err != nil {
		return err
	}
	ctype := "text/csv; charset=utf-8"
	if e.Format == "xlsx" {
		ctype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	}
	etag := ""
	if e.SHA256 != nil {
		etag = `"` + *e.SHA256 + `"`
	}
	return sendFile(c, f, info, fmt.Sprintf("passbatch-%s-%d.%s", e.Kind, e.ID, e.Format), ctype, etag)
}

func (s *server) pageExports(c *fiber.Ctx) error {
	out, err := s.gym.Exports(c.UserContext(), gym.Page{Limit: 50})
	if err != nil {
		return err
	}
	running := false
	for _, e := range out {
		running = running || e.Status == models.ExportPending || e.Status == models.ExportRunning
	}
	return s.render(c, "exports", "exports", fiber.Map{"Exports": out, "Refresh": running, "Error": c.Query("error"), "OK": c.Query("ok")})
}

func (s *server) pageExportCreate(c *fiber.Ctx) error {
	req := gym.ExportRequest{Kind: c.FormValue("kind"), Format: c.FormValue("format"), Force: c.FormValue("force") == "on"}
	if c.FormValue("nobom") == "on" {
		req.BOM = new(false)
	}
	var err error
	for _, f := range []struct {
		name string
		into **time.Time
	}{{"from", &req.Filter.From}, {"to", &req.Filter.To}} {
		if v := c.FormValue(f.name); v != "" && err == nil {
			var t time.Time
			if t, err = time.ParseInLocation("2006-01-02", v, models.Seoul); err != nil {
				err = &gym.FieldError{Field: f.name, Message: "a date"}
			}
			*f.into = &t
		}
	}
	req.Filter.Status = c.FormValue("status")
	if err == nil {
		var e gym.Export
		if e, _, err = s.gym.RequestExport(c.UserContext(), req, requester(c)); err == nil {
			return c.Redirect(fmt.Sprintf("/admin/exports?ok=%d", e.ID))
		}
	}
	return s.redirectError(c, "/admin/exports", err)
}
