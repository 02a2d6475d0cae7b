package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
)

func invalid(field, msg string) *APIError {
	return &APIError{Status: fiber.StatusUnprocessableEntity, Code: "invalid", Message: msg, Field: field}
}

func notFound(what string) *APIError {
	return &APIError{Status: fiber.StatusNotFound, Code: "not_found", Message: what + " not found"}
}

// decodeJSON reads the body strictly into v: malformed JSON is 400, a
// wrong type or an unknown field 422 naming the field.
func decodeJSON(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return &APIError{Status: fiber.StatusBadRequest, Code: "bad_request", Message: "a JSON body is required"}
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var pe *time.ParseError
		switch {
		case errors.As(err, &te):
			return invalid(te.Field, fmt.Sprintf("want a %s", te.Type))
		case errors.As(err, &pe):
			return invalid("", "times are RFC 3339, e.g. 2026-11-24T10:00:00+09:00")
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalid(f, "unknown field")
		}
		return &APIError{Status: fiber.StatusBadRequest, Code: "bad_request", Message: "malformed JSON: " + err.Error()}
	}
	if d.More() {
		return &APIError{Status: fiber.StatusBadRequest, Code: "bad_request", Message: "one JSON value expected"}
	}
	return nil
}

// page reads ?limit= (1..200, default 50) and ?after= (a positive id).
func page(c *fiber.Ctx) (limit int, after int64, err error) {
	limit = 50
	if v := c.Query("limit"); v != "" {
		n, e := strconv.Atoi(v)
		if e != nil || n < 1 || n > 200 {
			return 0, 0, invalid("limit", "must be 1 to 200")
		}
		limit = n
	}
	if v := c.Query("after"); v != "" {
		n, e := strconv.ParseInt(v, 10, 64)
		if e != nil || n < 0 {
			return 0, 0, invalid("after", "must be an id")
		}
		after = n
	}
	return limit, after, nil
}

func pathID(c *fiber.Ctx, name string) (int64, error) {
	n, err := strconv.ParseInt(c.Params(name), 10, 64)
	if err != nil || n <= 0 {
		return 0, notFound(name)
	}
	return n, nil
}

// passView is a pass as the API and the pages show it.
type passView struct {
	ID             int64      `json:"id" bun:"id"`
	PackageID      int64      `json:"package_id" bun:"package_id"`
	PackageName    string     `json:"package_name" bun:"package_name"`
	Status         string     `json:"status" bun:"status"`
	RemainingCount *int       `json:"remaining_count" bun:"remaining_count"`
	StartedAt      time.Time  `json:"started_at" bun:"started_at"`
	EndedAt        *time.Time `json:"ended_at" bun:"ended_at"`
	ExpiredAt      *time.Time `json:"expired_at" bun:"expired_at"`
}

func (s *server) passesOf(c *fiber.Ctx, userID int64) ([]passView, error) {
	limit, after, err := page(c)
	if err != nil {
		return nil, err
	}
	var out []passView
	err = s.o.DB.NewRaw(`SELECT p.id, p.package_id, k.name AS package_name, p.status, p.remaining_count, p.started_at, p.ended_at, p.expired_at
		FROM pass p JOIN package k ON k.id = p.package_id
		WHERE p.user_id = ? AND p.id > ? ORDER BY p.id LIMIT ?`, userID, after, limit).Scan(c.UserContext(), &out)
	if err != nil {
		return nil, fmt.Errorf("list passes: %w", err)
	}
	if out == nil {
		out = []passView{}
	}
	return out, nil
}

func list[T any](items []T, next func(T) int64, limit int) fiber.Map {
	m := fiber.Map{"items": items}
	if len(items) == limit && limit > 0 {
		m["next_after"] = next(items[len(items)-1])
	}
	return m
}

func (s *server) apiRoutes(r fiber.Router) {
	r.Post("/login", s.apiLogin)
	r.Post("/logout", func(c *fiber.Ctx) error { clearSession(c); return c.JSON(fiber.Map{"ok": true}) })

	r.Get("/me/passes", requireUser, func(c *fiber.Ctx) error {
		id := who(c)
		if id.UserID == 0 {
			return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "the admin token has no passes; use /api/users/:id/passes"}
		}
		out, err := s.passesOf(c, id.UserID)
		if err != nil {
			return err
		}
		limit, _, _ := page(c)
		return c.JSON(list(out, func(p passView) int64 { return p.ID }, limit))
	})
	r.Get("/users/:id/passes", requireUser, func(c *fiber.Ctx) error {
		uid, err := pathID(c, "id")
		if err != nil {
			return err
		}
		if id := who(c); !id.Admin && id.UserID != uid {
			return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "you can see only your own passes"}
		}
		exists, err := s.o.DB.NewSelect().Model((*models.User)(nil)).Where("id = ?", uid).Exists(c.UserContext())
		if err != nil {
			return err
		}
		if !exists {
			return notFound("user")
		}
		out, err := s.passesOf(c, uid)
		if err != nil {
			return err
		}
		limit, _, _ := page(c)
		return c.JSON(list(out, func(p passView) int64 { return p.ID }, limit))
	})

	a := r.Group("/admin", requireAdmin)
	a.Get("/packages", s.listPackages)
	a.Post("/packages", s.createPackage)
	a.Get("/bulk-passes", s.listBulkPasses)
	a.Post("/bulk-passes", s.createBulkPass)
	a.Post("/grants", s.createGrant)
	a.Get("/statistics", s.statistics)
	a.Get("/reports", s.listReports)
	a.Get("/reports/+", s.downloadReport)
	a.Get("/jobs", s.listJobs)
	a.Post("/jobs/:name/executions", s.launchJob)
	a.Get("/executions", s.listExecutions)
	a.Get("/executions/:id", s.getExecution)
	a.Post("/executions/:id/:action", s.controlExecution)
	s.exportRoutes(a)
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (s *server) apiLogin(c *fiber.Ctx) error {
	var req loginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Email == "" {
		return invalid("email", "required")
	}
	if req.Password == "" {
		return invalid("password", "required")
	}
	u, err := s.login(c.UserContext(), req.Email, req.Password)
	if err != nil {
		return err
	}
	if u == nil {
		// Set the status now: the login limiter counts responses >= 400.
		c.Status(fiber.StatusUnauthorized)
		return &APIError{Status: fiber.StatusUnauthorized, Code: "unauthenticated", Message: "wrong email or password"}
	}
	s.setSession(c, u)
	return c.JSON(fiber.Map{"id": u.ID, "name": u.Name, "email": u.Email, "role": u.Role})
}

func (s *server) listPackages(c *fiber.Ctx) error {
	limit, after, err := page(c)
	if err != nil {
		return err
	}
	var out []models.Package
	if err := s.o.DB.NewSelect().Model(&out).Where("id > ?", after).Order("id").Limit(int64(limit)).Scan(c.UserContext()); err != nil {
		return err
	}
	if out == nil {
		out = []models.Package{}
	}
	return c.JSON(list(out, func(p models.Package) int64 { return p.ID }, limit))
}

type packageRequest struct {
	Name       string `json:"name"`
	Count      *int   `json:"count"`
	PeriodDays *int   `json:"period_days"`
}

func (s *server) createPackage(c *fiber.Ctx) error {
	var req packageRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	req.Name = strings.TrimSpace(req.Name)
	switch {
	case req.Name == "":
		return invalid("name", "required")
	case len([]rune(req.Name)) > 100:
		return invalid("name", "at most 100 characters")
	case req.Count != nil && (*req.Count <= 0 || *req.Count > 10000):
		return invalid("count", "must be 1 to 10000, or null for unlimited")
	case req.PeriodDays != nil && (*req.PeriodDays <= 0 || *req.PeriodDays > 3650):
		return invalid("period_days", "must be 1 to 3650, or null for no end")
	}
	p := &models.Package{Name: req.Name, Count: req.Count, PeriodDays: req.PeriodDays}
	if _, err := s.o.DB.NewInsert().Model(p).Returning("*").Exec(c.UserContext()); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(p)
}

func (s *server) listBulkPasses(c *fiber.Ctx) error {
	limit, after, err := page(c)
	if err != nil {
		return err
	}
	out, err := s.bulkPasses(c, after, limit)
	if err != nil {
		return err
	}
	return c.JSON(list(out, func(b bulkView) int64 { return b.ID }, limit))
}

type bulkView struct {
	ID          int64      `json:"id" bun:"id"`
	PackageName string     `json:"package_name" bun:"package_name"`
	GroupName   string     `json:"group_name" bun:"group_name"`
	UserGroupID int64      `json:"user_group_id" bun:"user_group_id"`
	Status      string     `json:"status" bun:"status"`
	Count       *int       `json:"count" bun:"count"`
	StartedAt   time.Time  `json:"started_at" bun:"started_at"`
	EndedAt     *time.Time `json:"ended_at" bun:"ended_at"`
	Granted     int        `json:"granted" bun:"granted"`
}

func (s *server) bulkPasses(c *fiber.Ctx, after int64, limit int) ([]bulkView, error) {
	q := `SELECT b.id, k.name AS package_name, g.name AS group_name, b.user_group_id, b.status, b.count, b.started_at, b.ended_at,
		(SELECT count(*) FROM pass p WHERE p.bulk_pass_id = b.id) AS granted
		FROM bulk_pass b JOIN package k ON k.id = b.package_id JOIN user_group g ON g.id = b.user_group_id`
	var out []bulkView
	var err error
	if after > 0 {
		err = s.o.DB.NewRaw(q+" WHERE b.id < ? ORDER BY b.id DESC LIMIT ?", after, limit).Scan(c.UserContext(), &out)
	} else {
		err = s.o.DB.NewRaw(q+" ORDER BY b.id DESC LIMIT ?", limit).Scan(c.UserContext(), &out)
	}
	if out == nil {
		out = []bulkView{}
	}
	return out, err
}

type bulkRequest struct {
	PackageID   int64      `json:"package_id"`
	UserGroupID *int64     `json:"user_group_id"`
	Count       *int       `json:"count"`
	StartedAt   *time.Time `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at"`
}

// createBulkPass registers a bulk pass for a group; it is granted at its
// started_at (default now).
func (s *server) createBulkPass(c *fiber.Ctx) error {
	var req bulkRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.UserGroupID == nil {
		return invalid("user_group_id", "required")
	}
	return s.grant(c, tasks.GrantRequest{UserGroupID: req.UserGroupID, PackageID: req.PackageID, Count: req.Count,
		StartedAt: req.StartedAt, EndedAt: req.EndedAt, At: req.StartedAt})
}

func (s *server) createGrant(c *fiber.Ctx) error {
	var req tasks.GrantRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	return s.grant(c, req)
}

// grant creates the bulk pass and enqueues its grant task; with an
// Idempotency-Key the same key and body returns the first response and
// creates nothing, the same key with another body is 422.
func (s *server) grant(c *fiber.Ctx, req tasks.GrantRequest) error {
	ctx := c.UserContext()
	key := strings.TrimSpace(c.Get("Idempotency-Key"))
	if len(key) > 200 {
		return invalid("Idempotency-Key", "at most 200 characters")
	}
	id := who(c)
	scope := fmt.Sprintf("%s user:%d token:%v", c.Path(), id.UserID, id.Token)
	sum := sha256.Sum256(c.Body())
	hash := hex.EncodeToString(sum[:])
	var (
		g      *tasks.Grant
		replay json.RawMessage
	)
	err := s.o.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if key != "" {
			res, err := tx.NewRaw(`INSERT INTO idempotency_key (key, scope, request_hash, status, response) VALUES (?, ?, ?, 0, '{}')
				ON CONFLICT DO NOTHING`, key, scope, hash).Exec(ctx)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				var prev struct {
					Hash     string          `bun:"request_hash"`
					Response json.RawMessage `bun:"response"`
				}
				if err := tx.NewRaw("SELECT request_hash, response FROM idempotency_key WHERE scope = ? AND key = ?", scope, key).Scan(ctx, &prev); err != nil {
					return err
				}
				if prev.Hash != hash {
					return invalid("Idempotency-Key", "this key was used with another request body")
				}
				replay = prev.Response
				return nil
			}
		}
		var err error
		g, err = tasks.CreateGrant(ctx, tx, req, s.o.Now())
		if err != nil {
			return err
		}
		if key != "" {
			b, _ := json.Marshal(g)
			if _, err := tx.NewRaw("UPDATE idempotency_key SET status = 202, response = ? WHERE scope = ? AND key = ?", string(b), scope, key).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	var fe *tasks.FieldError
	if errors.As(err, &fe) {
		return invalid(fe.Field, fe.Message)
	}
	if err != nil {
		return err
	}
	if replay != nil {
		c.Set("Idempotent-Replayed", "true")
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Status(fiber.StatusAccepted).Send(replay)
	}
	task, err := tasks.NewGrantTask(g.BulkPassID, g.ScheduledAt)
	if err != nil {
		return err
	}
	if _, err := s.o.Client.EnqueueContext(ctx, task, asynq.ProcessAt(g.ScheduledAt), asynq.TaskID(tasks.GrantTaskID(g.BulkPassID)),
		asynq.Queue(tasks.QueueSchedule), asynq.MaxRetry(10)); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		// The bulk pass is saved; the per-minute add-passes run grants it.
		s.o.Logger.WarnContext(ctx, "grant task not enqueued; the per-minute sweep will grant it", "bulk_pass_id", g.BulkPassID, "err", err)
	}
	return c.Status(fiber.StatusAccepted).JSON(g)
}

// statistics returns counts per hour, day or week (Asia/Seoul) over [from, to).
func (s *server) statistics(c *fiber.Ctx) error {
	gran := c.Query("granularity", "day")
	var unit string
	var maxSpan time.Duration
	switch gran {
	case "hour":
		unit, maxSpan = "hour", 31*24*time.Hour
	case "day":
		unit, maxSpan = "day", 366*24*time.Hour
	case "week":
		unit, maxSpan = "week", 3*366*24*time.Hour
	default:
		return invalid("granularity", "hour, day or week")
	}
	now := s.o.Now()
	to := now
	from := now.Add(-10 * 24 * time.Hour)
	var err error
	if v := c.Query("from"); v != "" {
		if from, err = time.Parse(time.RFC3339, v); err != nil {
			return invalid("from", "an RFC 3339 time, e.g. 2026-11-01T00:00:00+09:00")
		}
	}
	if v := c.Query("to"); v != "" {
		if to, err = time.Parse(time.RFC3339, v); err != nil {
			return invalid("to", "an RFC 3339 time")
		}
	}
	if !from.Before(to) {
		return invalid("to", "must be after from")
	}
	if to.Sub(from) > maxSpan {
		return invalid("to", fmt.Sprintf("at most %s of %s rows", maxSpan, gran))
	}
	rows, err := statRows(c, s.o.DB, unit, from, to)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"granularity": gran, "from": from, "to": to, "items": rows})
}

type statRow struct {
	At        time.Time `json:"at" bun:"at"`
	All       int64     `json:"all_count" bun:"all_count"`
	Attended  int64     `json:"attended_count" bun:"attended_count"`
	Cancelled int64     `json:"cancelled_count" bun:"cancelled_count"`
}

func statRows(c *fiber.Ctx, db bun.IDB, unit string, from, to time.Time) ([]statRow, error) {
	var rows []statRow
	err := db.NewRaw(`SELECT date_trunc(?, statistics_at AT TIME ZONE 'Asia/Seoul') AT TIME ZONE 'Asia/Seoul' AS at,
			sum(all_count) AS all_count, sum(attended_count) AS attended_count, sum(cancelled_count) AS cancelled_count
		FROM statistics WHERE statistics_at >= ? AND statistics_at < ? GROUP BY 1 ORDER BY 1`, unit, from, to).Scan(c.UserContext(), &rows)
	if rows == nil {
		rows = []statRow{}
	}
	return rows, err
}

func (s *server) listReports(c *fiber.Ctx) error {
	list, err := tasks.ListReports(c.UserContext(), s.o.Store)
	if err != nil {
		return err
	}
	if list == nil {
		list = []storage.Info{}
	}
	return c.JSON(fiber.Map{"items": list})
}

func (s *server) downloadReport(c *fiber.Ctx) error {
	key := tasks.ReportPrefix + c.Params("+")
	f, err := s.o.Store.Open(c.UserContext(), key)
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrBadKey) {
		return notFound("report")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename=%q`, key[strings.LastIndexByte(key, '/')+1:]))
	return c.Send(b)
}

type jobView struct {
	Name        string                  `json:"name"`
	Description string                  `json:"description"`
	Schedule    string                  `json:"schedule"`
	Steps       []string                `json:"steps"`
	Last        *batch.ExecutionSummary `json:"last_execution"`
}

func (s *server) jobs(c *fiber.Ctx) ([]jobView, error) {
	last, err := s.o.Engine.LastExecutions(c.UserContext())
	if err != nil {
		return nil, err
	}
	sched := map[string]string{}
	for _, e := range s.o.Schedule {
		sched[e.Job] = e.Cron
	}
	var out []jobView
	for _, name := range s.o.Engine.Registry().Names() {
		j, _ := s.o.Engine.Registry().Job(name)
		v := jobView{Name: name, Description: j.Description, Schedule: sched[name], Steps: j.StepNames()}
		if l, ok := last[name]; ok {
			v.Last = &l
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *server) listJobs(c *fiber.Ctx) error {
	out, err := s.jobs(c)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": out})
}

type launchRequest struct {
	Params map[string]string `json:"params"`
	// NonIdentifying names params that do not identify the instance.
	NonIdentifying []string `json:"non_identifying"`
}

func (s *server) launchJob(c *fiber.Ctx) error {
	name := c.Params("name")
	if _, err := s.o.Engine.Registry().Job(name); err != nil {
		return notFound("job " + strconv.Quote(name))
	}
	var req launchRequest
	if len(bytes.TrimSpace(c.Body())) > 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	p := batch.Params{}
	for k, v := range req.Params {
		if k == "" || len(k) > 100 || len(v) > 1000 {
			return invalid("params", "names are 1 to 100 characters, values at most 1000")
		}
		p[k] = batch.Param{Value: v, Identifying: true}
	}
	for _, k := range req.NonIdentifying {
		if v, ok := p[k]; ok {
			v.Identifying = false
			p[k] = v
		}
	}
	je, err := s.o.Engine.Launch(c.UserContext(), name, p)
	if err != nil {
		return engineErr(err)
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"job_execution_id": je.JobExecutionID, "status": je.Status})
}

// engineErr maps the engine's refusals to API errors.
func engineErr(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, batch.ErrNotFound):
		return notFound("execution")
	case errors.Is(err, batch.ErrInvalidParams):
		return invalid("params", msg)
	case errors.Is(err, batch.ErrAlreadyComplete), errors.Is(err, batch.ErrAlreadyRunning),
		errors.Is(err, batch.ErrAbandoned), errors.Is(err, batch.ErrInvalidTransition):
		return &APIError{Status: fiber.StatusConflict, Code: "conflict", Message: msg}
	}
	return err
}

func (s *server) listExecutions(c *fiber.Ctx) error {
	limit, after, err := page(c)
	if err != nil {
		return err
	}
	st := strings.ToUpper(c.Query("status"))
	if st != "" && st != batch.StatusStarting && st != batch.StatusStarted && st != batch.StatusStopping && st != batch.StatusStopped &&
		st != batch.StatusFailed && st != batch.StatusCompleted && st != batch.StatusAbandoned {
		return invalid("status", "an execution status such as COMPLETED")
	}
	out, err := s.o.Engine.ListExecutions(c.UserContext(), batch.ExecutionFilter{JobName: c.Query("job"), Status: st, Before: after, Limit: limit})
	if err != nil {
		return err
	}
	if out == nil {
		out = []batch.ExecutionSummary{}
	}
	return c.JSON(list(out, func(e batch.ExecutionSummary) int64 { return e.JobExecutionID }, limit))
}

func (s *server) getExecution(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	d, err := s.o.Engine.Execution(c.UserContext(), id)
	if err != nil {
		return engineErr(err)
	}
	return c.JSON(d)
}

func (s *server) controlExecution(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	switch c.Params("action") {
	case "restart":
		je, err := s.o.Engine.Restart(ctx, id)
		if err != nil {
			return engineErr(err)
		}
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"job_execution_id": je.JobExecutionID, "status": je.Status})
	case "stop":
		err = s.o.Engine.Stop(ctx, id)
	case "abandon":
		err = s.o.Engine.Abandon(ctx, id)
	default:
		return notFound("action")
	}
	if err != nil {
		return engineErr(err)
	}
	return c.Status(fiber.StatusAccepted).JSON(fiber.Map{"job_execution_id": id})
}
