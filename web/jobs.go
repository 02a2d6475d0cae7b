package web

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
	"github.com/passbatch/passbatch/models"
)

func (s *server) jobRoutes(a fiber.Router) {
	a.Get("/jobs", func(c *fiber.Ctx) error {
		out, err := s.gym.Jobs(c.UserContext())
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"items": out})
	})
	a.Post("/jobs/:name/executions", s.apiLaunch)
	a.Get("/executions", s.apiExecutions)
	a.Get("/executions/:id", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		d, err := s.o.Engine.Execution(c.UserContext(), id)
		if err != nil {
			return err
		}
		return c.JSON(d)
	})
	a.Get("/executions/:id/skipped", s.apiSkipped)
	a.Post("/executions/:id/:action", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		now, err := s.gym.Control(c.UserContext(), id, c.Params("action"))
		if err != nil {
			return err
		}
		m := fiber.Map{"job_execution_id": now}
		if c.Params("action") == gym.ActionRestart {
			m["status"] = gym.StatusStarting
		}
		return c.Status(fiber.StatusAccepted).JSON(m)
	})
}

type launchRequest struct {
	Params map[string]string `json:"params"`
	// Next launches a new instance with run.id one more than the job's
	// last (Spring's RunIdIncrementer).
	Next bool `json:"next"`
	// NonIdentifying names params that do not identify the instance.
	NonIdentifying []string `json:"non_identifying"`
}

func (s *server) apiLaunch(c *fiber.Ctx) error {
	name := c.Params("name")
	if _, err := s.o.Engine.Registry().Job(name); err != nil {
		return notFound("job " + strconv.Quote(name))
	}
	var req launchRequest
	if len(c.Body()) > 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	p := gym.Params{}
	for k, v := range req.Params {
		if k == "" || len(k) > 100 || len(v) > 1000 {
			return invalid("params", "names are 1 to 100 characters, values at most 1000")
		}
		p[k] = gym.Param{Value: v, Identifying: true}
	}
	for _, k := range req.NonIdentifying {
		if v, ok := p[k]; ok {
			v.Identifying = false
			p[k] = v
		}
	}
	je, err := s.gym.Launch(c.UserContext(), name, p, req.Next)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"job_execution_id": je.JobExecutionID, "status": je.Status})
}

var statuses = []string{gym.StatusStarting, gym.StatusStarted, gym.StatusStopping, gym.StatusStopped,
	gym.StatusFailed, gym.StatusCompleted, gym.StatusAbandoned}

func (s *server) apiExecutions(c *fiber.Ctx) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	f, err := historyFilter(c)
	if err != nil {
		return err
	}
	f.Before, f.Limit = p.After, p.Limit
	out, err := s.o.Engine.ListExecutions(c.UserContext(), f)
	if err != nil {
		return err
	}
	if out == nil {
		out = []gym.ExecutionSummary{}
	}
	return c.JSON(list(out, func(e gym.ExecutionSummary) int64 { return e.JobExecutionID }, p))
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// historyFilter reads the history's filter from the query: job, status,
// from and to (dates in the gym's zone, or RFC 3339), before (paging).
func historyFilter(c *fiber.Ctx) (gym.ExecutionFilter, error) {
	f := gym.ExecutionFilter{JobName: c.Query("job"), Status: strings.ToUpper(c.Query("status"))}
	if f.Status != "" && !contains(statuses, f.Status) {
		return f, invalid("status", "an execution status such as COMPLETED")
	}
	var err error
	if f.From, f.To, err = queryRange(c); err != nil {
		return f, err
	}
	f.Before, _ = strconv.ParseInt(c.Query("before"), 10, 64)
	return f, nil
}

// queryRange reads the query's from and to: dates in the gym's zone (to
// means the end of that day) or RFC 3339 times; zero when absent.
func queryRange(c *fiber.Ctx) (from, to time.Time, err error) {
	for _, b := range []struct {
		name string
		into *time.Time
		next bool // a date means the end of that day
	}{{"from", &from, false}, {"to", &to, true}} {
		v := c.Query(b.name)
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			*b.into = t
		} else if t, err := time.ParseInLocation("2006-01-02", v, models.Seoul); err == nil {
			if b.next {
				t = t.AddDate(0, 0, 1)
			}
			*b.into = t
		} else {
			return from, to, invalid(b.name, "a date (2026-12-01) or an RFC 3339 time")
		}
	}
	return from, to, nil
}

func (s *server) pageJobs(c *fiber.Ctx) error {
	ctx := c.UserContext()
	jobs, err := s.gym.Jobs(ctx)
	if err != nil {
		return err
	}
	f, ferr := historyFilter(c)
	if ferr != nil {
		f = gym.ExecutionFilter{}
	}
	const page = 25
	f.Limit = page
	execs, err := s.o.Engine.ListExecutions(ctx, f)
	if err != nil {
		return err
	}
	var older int64
	if len(execs) == page {
		older = execs[page-1].JobExecutionID
	}
	var detail *gym.ExecutionDetail
	if v := c.Query("execution"); v != "" {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			detail, _ = s.o.Engine.Execution(ctx, id)
		}
	} else if len(execs) > 0 && f.Before == 0 {
		detail, _ = s.o.Engine.Execution(ctx, execs[0].JobExecutionID)
	}
	running := false
	for _, e := range execs {
		running = running || gym.Running(e.Status)
	}
	msg := c.Query("error")
	if ferr != nil {
		msg = asAPIError(ferr).Field + ": " + asAPIError(ferr).Message
	}
	return s.render(c, "jobs", "jobs", fiber.Map{
		"Jobs": jobs, "Executions": execs, "Detail": detail, "Refresh": running, "Error": msg,
		"F":        fiber.Map{"Job": f.JobName, "Status": f.Status, "From": c.Query("from"), "To": c.Query("to")},
		"Statuses": statuses, "Older": older, "Paged": f.Before > 0,
	})
}

func (s *server) pageLaunch(c *fiber.Ctx) error {
	je, err := s.gym.Launch(c.UserContext(), c.Params("name"), gym.Params{}, c.FormValue("new_instance") == "1")
	if err != nil {
		return s.redirectError(c, "/admin/jobs", err)
	}
	return c.Redirect(fmt.Sprintf("/admin/executions/%d", je.JobExecutionID))
}

func (s *server) pageControl(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return notFound("execution")
	}
	now, err := s.gym.Control(c.UserContext(), id, c.Params("action"))
	if err != nil {
		return s.redirectError(c, fmt.Sprintf("/admin/executions/%d", id), err)
	}
	if n := safeNext(c.FormValue("next")); n != "" {
		return c.Redirect(n) // e.g. back to the exports page
	}
	return c.Redirect(fmt.Sprintf("/admin/executions/%d", now))
}
