package web

import (
	"fmt"
	"github.com/passbatch/passbatch/gym"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// stepBar is one step on an execution's timeline, in 1000ths of its span.
type stepBar struct {
	Name, Status, Took string
	X, W, Y, TextY     int
}

// timeline lays d's steps out on one time axis: each bar from the step's
// start to its end (or now), so a split's branches run side by side.
func timeline(d *gym.ExecutionDetail, now time.Time) []stepBar {
	start := d.CreateTime
	if d.StartTime != nil {
		start = *d.StartTime
	}
	end := now
	if d.EndTime != nil {
		end = *d.EndTime
	}
	span := end.Sub(start)
	if span <= 0 {
		span = time.Millisecond
	}
	at := func(t time.Time) int { return int(1000 * t.Sub(start) / span) }
	var out []stepBar
	for i, s := range d.Steps {
		if s.StartTime == nil {
			continue
		}
		e := now
		if s.EndTime != nil {
			e = *s.EndTime
		}
		x := min(max(at(*s.StartTime), 0), 999)
		w := max(at(e)-x, 2)
		out = append(out, stepBar{Name: s.StepName, Status: s.Status, Took: e.Sub(*s.StartTime).Round(time.Millisecond).String(),
			X: x, W: min(w, 1000-x), Y: i * 24, TextY: i*24 + 13})
	}
	return out
}

// executionView is what the execution page and its live part show.
func (s *server) executionView(c *fiber.Ctx) (fiber.Map, error) {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return nil, notFound("execution")
	}
	d, err := s.o.Engine.Execution(c.UserContext(), id)
	if err != nil {
		return nil, err
	}
	var eta *float64
	for _, st := range d.Steps {
		if st.ETASeconds != nil && (eta == nil || *st.ETASeconds > *eta) {
			eta = st.ETASeconds
		}
	}
	tl := timeline(d, s.o.Now())
	m := fiber.Map{"D": d, "Running": gym.Running(d.Status), "ETA": eta, "Timeline": tl, "TimelineHeight": max(len(tl)*24, 24)}
	after, _ := strconv.ParseInt(c.Query("skipped_after"), 10, 64)
	const page = 50
	skipped, err := s.o.Engine.Skipped(c.UserContext(), d.JobExecutionID, after, page+1)
	if err != nil {
		return nil, err
	}
	if len(skipped) > page {
		m["SkippedMore"] = skipped[page-1].ID
		skipped = skipped[:page]
	}
	m["Skipped"] = skipped
	return m, nil
}

// pageExecution is /admin/executions/:id: parameters and the live part
// (status, timeline, steps with pace and ETA, partitions with stragglers,
// controls, skipped items paged by ?skipped_after=).
func (s *server) pageExecution(c *fiber.Ctx) error {
	m, err := s.executionView(c)
	if err != nil {
		return err
	}
	m["Error"] = c.Query("error")
	return s.render(c, "execution", "execution", m)
}

// pageExecutionLive is the live part alone, which the page's script
// fetches every 2 s while the execution runs.
func (s *server) pageExecutionLive(c *fiber.Ctx) error {
	m, err := s.executionView(c)
	if err != nil {
		return err
	}
	l := lang(c)
	m["L"], m["CSRF"] = dict[l], s.csrfToken(c)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Render("execution_live", m)
}

// apiSkipped is GET /api/admin/executions/:id/skipped?after=&limit=.
func (s *server) apiSkipped(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	if _, err := s.o.Engine.Execution(c.UserContext(), id); err != nil {
		return err
	}
	out, err := s.o.Engine.Skipped(c.UserContext(), id, p.After, p.Limit)
	if err != nil {
		return err
	}
	return c.JSON(list(out, func(r gym.SkipRecord) int64 { return r.ID }, p))
}

// etaText formats a number of seconds left.
func etaText(v *float64) string {
	if v == nil {
		return "-"
	}
	return (time.Duration(*v) * time.Second).Round(time.Second).String()
}

// rateText formats items per second.
func rateText(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f/s", *v)
}

// spark is a job's recent runs drawn as a sparkline of their durations
// (100 × 24 units), failures marked.
type spark struct {
	Points string
	Fails  []struct{ X, Y int }
	Title  string
}

func sparkline(runs []gym.RunPoint) *spark {
	if len(runs) < 2 {
		return nil
	}
	top := 0.0
	for _, r := range runs {
		top = max(top, r.Seconds)
	}
	if top <= 0 {
		top = 1
	}
	sp := &spark{}
	var pts []string
	for i, r := range runs {
		x := i * 100 / (len(runs) - 1)
		y := 22 - int(20*r.Seconds/top)
		pts = append(pts, fmt.Sprintf("%d,%d", x, y))
		if r.Status == gym.StatusFailed || r.Status == gym.StatusAbandoned {
			sp.Fails = append(sp.Fails, struct{ X, Y int }{x, y})
		}
	}
	sp.Points = strings.Join(pts, " ")
	sp.Title = fmt.Sprintf("%d runs, longest %.1fs, %d failed", len(runs), top, len(sp.Fails))
	return sp
}
