package web

import (
	"github.com/passbatch/passbatch/gym"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/models"
)

func (s *server) statisticsRoutes(a fiber.Router) {
	a.Get("/statistics", func(c *fiber.Ctx) error {
		var from, to *time.Time
		for _, q := range []struct {
			name string
			into **time.Time
		}{{"from", &from}, {"to", &to}} {
			if v := c.Query(q.name); v != "" {
				t, err := time.Parse(time.RFC3339, v)
				if err != nil {
					return invalid(q.name, "an RFC 3339 time, e.g. 2026-11-01T00:00:00+09:00")
				}
				*q.into = &t
			}
		}
		st, err := s.gym.Statistics(c.UserContext(), c.Query("granularity", "day"), from, to)
		if err != nil {
			return err
		}
		return c.JSON(st)
	})
	a.Get("/reports", func(c *fiber.Ctx) error {
		out, err := s.gym.Reports(c.UserContext())
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"items": out})
	})
	a.Get("/reports/+", func(c *fiber.Ctx) error {
		f, info, err := s.gym.OpenReport(c.UserContext(), c.Params("+"))
		if err != nil {
			return err
		}
		return sendFile(c, f, info, info.Key[strings.LastIndexByte(info.Key, '/')+1:], "text/csv; charset=utf-8", "")
	})
}

// bar is one group of the statistics chart, with pixel heights.
type bar struct {
	Label                    string
	All, Attended, Cancelled int64
	X, HA, HC, YA, YC        int
}

func (s *server) pageStats(c *fiber.Ctx) error {
	gran := c.Query("granularity", "day")
	if gran != "hour" && gran != "week" {
		gran = "day"
	}
	st, err := s.gym.Statistics(c.UserContext(), gran, nil, nil)
	if err != nil {
		return err
	}
	layout := map[string]string{"hour": "15시", "day": "01/02", "week": "01/02~"}[gran]
	var top int64 = 1
	for _, r := range st.Items {
		top = max(top, r.Attended, r.Cancelled)
	}
	const h = 180
	w := 36
	if len(st.Items) > 16 {
		w = 720 / len(st.Items)
	}
	bars := make([]bar, len(st.Items))
	for i, r := range st.Items {
		ha, hc := int(r.Attended*h/top), int(r.Cancelled*h/top)
		bars[i] = bar{Label: r.At.In(models.Seoul).Format(layout), All: r.All, Attended: r.Attended, Cancelled: r.Cancelled,
			X: 40 + i*w, HA: ha, HC: hc, YA: 20 + h - ha, YC: 20 + h - hc}
	}
	reports, err := s.gym.Reports(c.UserContext())
	if err != nil {
		return err
	}
	for i := range reports {
		reports[i].Key = strings.TrimPrefix(reports[i].Key, gym.ReportPrefix)
	}
	return s.render(c, "stats", "stats", fiber.Map{
		"Gran": gran, "Bars": bars, "BarW": w/2 - 2, "ChartW": 40 + len(bars)*w + 20, "Max": top, "Rows": st.Items,
		"Reports": reports,
	})
}
