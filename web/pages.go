package web

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/csrf"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/tasks"
)

// The pages speak Korean by default and English when the browser asks.
var dict = map[string]map[string]string{
	"ko": {
		"title": "패스배치", "login": "로그인", "logout": "로그아웃", "email": "이메일", "password": "비밀번호",
		"myPasses": "내 이용권", "bulk": "일괄 지급", "stats": "통계", "jobs": "배치 작업", "monitoring": "큐 모니터링",
		"remaining": "남은 횟수", "unlimited": "무제한", "times": "회", "period": "기간", "noEnd": "기한 없음",
		"READY": "시작 전", "PROGRESSED": "진행 중", "EXPIRED": "만료", "noPasses": "이용권이 없습니다.",
		"badLogin": "이메일 또는 비밀번호가 올바르지 않습니다.", "package": "이용권 상품", "group": "회원 그룹",
		"users": "회원 번호 (쉼표로 구분)", "grantAt": "지급 시각", "count": "횟수 (비우면 상품 기본값)", "grant": "지급 예약",
		"granted": "지급 예약됨", "status": "상태", "start": "시작", "end": "종료", "issued": "지급", "or": "또는",
		"hourly": "시간별", "daily": "일별", "weekly": "주별", "all": "전체", "attended": "출석", "cancelled": "취소",
		"reports": "보고서 파일", "noReports": "아직 보고서가 없습니다.", "launch": "실행", "schedule": "일정",
		"lastRun": "마지막 실행", "executions": "실행 기록", "steps": "단계", "progress": "진행률", "stop": "중지",
		"restart": "재시작", "resumeHint": "끝난 파티션은 건너뛰고 이어서 만듭니다", "abandon": "포기", "read": "읽음", "write": "기록", "skip": "건너뜀", "skipped": "건너뛴 항목",
		"never": "실행 기록 없음", "from": "시작", "to": "끝", "show": "보기", "autoRefresh": "5초마다 새로 고침",
		"chartTitle": "최근 예약 현황", "forbidden": "권한이 없습니다.", "ready": "대기",
		"exports": "데이터 내보내기", "kind": "종류", "format": "형식", "request": "내보내기 요청", "force": "같은 요청도 새로 만들기",
		"download": "다운로드", "rows": "행", "requested": "요청됨", "kindpasses": "이용권", "kindbookings": "예약", "kindstatistics": "통계",
	},
	"en": {
		"title": "passbatch", "login": "Log in", "logout": "Log out", "email": "Email", "password": "Password",
		"myPasses": "My passes", "bulk": "Bulk grants", "stats": "Statistics", "jobs": "Jobs", "monitoring": "Queues",
		"remaining": "Uses left", "unlimited": "Unlimited", "times": "", "period": "Period", "noEnd": "no end",
		"READY": "Not started", "PROGRESSED": "Active", "EXPIRED": "Expired", "noPasses": "You have no passes.",
		"badLogin": "Wrong email or password.", "package": "Package", "group": "User group",
		"users": "User ids (comma-separated)", "grantAt": "Grant at", "count": "Uses (empty: the package's)", "grant": "Schedule grant",
		"granted": "Grant scheduled", "status": "Status", "start": "Start", "end": "End", "issued": "Granted", "or": "or",
		"hourly": "Hourly", "daily": "Daily", "weekly": "Weekly", "all": "All", "attended": "Attended", "cancelled": "Cancelled",
		"reports": "Report files", "noReports": "No reports yet.", "launch": "Run", "schedule": "Schedule",
		"lastRun": "Last run", "executions": "Executions", "steps": "Steps", "progress": "Progress", "stop": "Stop",
		"restart": "Restart", "resumeHint": "Resumes from the finished partitions", "abandon": "Abandon", "read": "Read", "write": "Written", "skip": "Skipped", "skipped": "Skipped items",
		"never": "never run", "from": "From", "to": "To", "show": "Show", "autoRefresh": "refreshes every 5 s",
		"chartTitle": "Bookings", "forbidden": "You are not allowed here.", "ready": "Waiting",
		"exports": "Exports", "kind": "Kind", "format": "Format", "request": "Request export", "force": "new even if identical",
		"download": "Download", "rows": "rows", "requested": "Requested", "kindpasses": "Passes", "kindbookings": "Bookings", "kindstatistics": "Statistics",
	},
}

func lang(c *fiber.Ctx) string {
	if strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderAcceptLanguage)), "en") {
		return "en"
	}
	return "ko"
}

// view is the data every page gets.
func (s *server) view(c *fiber.Ctx, title string, m fiber.Map) fiber.Map {
	l := lang(c)
	m["L"] = dict[l]
	m["Lang"] = l
	m["Title"] = title
	m["Me"] = who(c)
	m["CSRF"] = c.Locals("csrf")
	m["Path"] = c.Path()
	return m
}

// requireUserPage sends visitors without a session to /login.
func requireUserPage(c *fiber.Ctx) error {
	if who(c) == nil {
		return c.Redirect("/login?next=" + c.OriginalURL())
	}
	return c.Next()
}

func (s *server) requireAdminPage(c *fiber.Ctx) error {
	id := who(c)
	if id == nil {
		return c.Redirect("/login?next=" + c.OriginalURL())
	}
	if !id.Admin {
		return c.Status(fiber.StatusForbidden).Render("forbidden", s.view(c, dict[lang(c)]["forbidden"], fiber.Map{}), "layout")
	}
	return c.Next()
}

func (s *server) pageRoutes(app *fiber.App) {
	if s.o.Redis != nil {
		mon := asynqmon.New(asynqmon.Options{RootPath: "/admin/monitoring", RedisConnOpt: s.o.Redis})
		h := adaptor.HTTPHandler(mon)
		app.All("/admin/monitoring", s.requireAdminPage, h)
		app.All("/admin/monitoring/*", s.requireAdminPage, h)
	}
	pages := app.Group("", csrf.New(csrf.Config{
		KeyLookup: "form:_csrf", CookieName: "pb_csrf", CookieSameSite: "Lax", CookieHTTPOnly: true,
		ContextKey: "csrf", Expiration: 12 * time.Hour,
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "the form expired; reload the page"}
		},
	}))
	pages.Get("/", func(c *fiber.Ctx) error {
		if id := who(c); id != nil && id.Admin {
			return c.Redirect("/admin/statistics")
		}
		return c.Redirect("/me/passes")
	})
	pages.Get("/login", func(c *fiber.Ctx) error {
		return c.Render("login", s.view(c, dict[lang(c)]["login"], fiber.Map{"Next": safeNext(c.Query("next"))}), "layout")
	})
	pages.Post("/login", s.pageLogin)
	pages.Post("/logout", func(c *fiber.Ctx) error { clearSession(c); return c.Redirect("/login") })
	pages.Get("/me/passes", requireUserPage, s.pagePasses)
	admin := pages.Group("/admin", s.requireAdminPage)
	admin.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/admin/statistics") })
	admin.Get("/bulk-passes", s.pageBulk)
	admin.Post("/bulk-passes", s.pageBulkCreate)
	admin.Get("/statistics", s.pageStats)
	admin.Get("/jobs", s.pageJobs)
	admin.Post("/jobs/:name/launch", s.pageLaunch)
	admin.Post("/executions/:id/:action", s.pageControl)
	admin.Get("/exports", s.pageExports)
	admin.Post("/exports", s.pageExportCreate)
}

// safeNext keeps a post-login redirect on this site.
func safeNext(n string) string {
	if strings.HasPrefix(n, "/") && !strings.HasPrefix(n, "//") && !strings.Contains(n, "\\") {
		return n
	}
	return ""
}

func (s *server) pageLogin(c *fiber.Ctx) error {
	u, err := s.login(c.UserContext(), c.FormValue("email"), c.FormValue("password"))
	if err != nil {
		return err
	}
	if u == nil {
		return c.Status(fiber.StatusUnauthorized).Render("login", s.view(c, dict[lang(c)]["login"], fiber.Map{
			"Error": dict[lang(c)]["badLogin"], "Email": c.FormValue("email"), "Next": safeNext(c.FormValue("next")),
		}), "layout")
	}
	s.setSession(c, u)
	if n := safeNext(c.FormValue("next")); n != "" {
		return c.Redirect(n)
	}
	if u.Role == models.RoleAdmin {
		return c.Redirect("/admin/statistics")
	}
	return c.Redirect("/me/passes")
}

func (s *server) pagePasses(c *fiber.Ctx) error {
	id := who(c)
	if id.UserID == 0 {
		return c.Redirect("/admin/statistics")
	}
	passes, err := s.passesOf(c, id.UserID)
	if err != nil {
		return err
	}
	return c.Render("passes", s.view(c, dict[lang(c)]["myPasses"], fiber.Map{"Passes": passes, "Now": s.o.Now()}), "layout")
}

func (s *server) pageBulk(c *fiber.Ctx) error {
	ctx := c.UserContext()
	bulks, err := s.bulkPasses(c, 0, 50)
	if err != nil {
		return err
	}
	var pkgs []models.Package
	if err := s.o.DB.NewSelect().Model(&pkgs).Order("id").Limit(200).Scan(ctx); err != nil {
		return err
	}
	var groups []struct {
		ID      int64  `bun:"id"`
		Name    string `bun:"name"`
		Members int    `bun:"members"`
	}
	if err := s.o.DB.NewRaw(`SELECT g.id, g.name, (SELECT count(*) FROM user_group_mapping m WHERE m.user_group_id = g.id) AS members
		FROM user_group g WHERE g.description <> 'made for an ad-hoc grant' ORDER BY g.id LIMIT 200`).Scan(ctx, &groups); err != nil {
		return err
	}
	return c.Render("bulk", s.view(c, dict[lang(c)]["bulk"], fiber.Map{
		"Bulks": bulks, "Packages": pkgs, "Groups": groups, "OK": c.Query("ok"), "Error": c.Query("error"),
		"DefaultAt": s.o.Now().In(seoulZone).Add(2 * time.Minute).Format("2006-01-02T15:04"),
	}), "layout")
}

var seoulZone = func() *time.Location {
	l, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		return time.FixedZone("KST", 9*3600)
	}
	return l
}()

func (s *server) pageBulkCreate(c *fiber.Ctx) error {
	req := tasks.GrantRequest{}
	fail := func(msg string) error { return c.Redirect("/admin/bulk-passes?error=" + urlQuery(msg)) }
	pid, err := strconv.ParseInt(c.FormValue("package_id"), 10, 64)
	if err != nil {
		return fail("package: choose a package")
	}
	req.PackageID = pid
	if g := c.FormValue("user_group_id"); g != "" {
		gid, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return fail("group: choose a group")
		}
		req.UserGroupID = &gid
	}
	if u := strings.TrimSpace(c.FormValue("user_ids")); u != "" {
		if req.UserGroupID != nil {
			return fail("choose a group or list users, not both")
		}
		for _, f := range strings.FieldsFunc(u, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
			id, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				return fail("user ids: " + f + " is not a number")
			}
			req.UserIDs = append(req.UserIDs, id)
		}
	}
	if v := c.FormValue("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fail("count: a number")
		}
		req.Count = &n
	}
	if v := c.FormValue("at"); v != "" {
		t, err := time.ParseInLocation("2006-01-02T15:04", v, seoulZone)
		if err != nil {
			return fail("time: use the picker")
		}
		req.At = &t
		req.StartedAt = &t
	}
	ctx := c.UserContext()
	g, err := tasks.CreateGrant(ctx, s.o.DB, req, s.o.Now())
	var fe *tasks.FieldError
	if errors.As(err, &fe) {
		return fail(fe.Error())
	}
	if err != nil {
		return err
	}
	task, err := tasks.NewGrantTask(g.BulkPassID, g.ScheduledAt)
	if err != nil {
		return err
	}
	if _, err := s.o.Client.EnqueueContext(ctx, task, asynq.ProcessAt(g.ScheduledAt), asynq.TaskID(tasks.GrantTaskID(g.BulkPassID)),
		asynq.Queue(tasks.QueueSchedule), asynq.MaxRetry(10)); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		s.o.Logger.WarnContext(ctx, "grant task not enqueued; the per-minute sweep will grant it", "err", err)
	}
	return c.Redirect(fmt.Sprintf("/admin/bulk-passes?ok=%d", g.BulkPassID))
}

func urlQuery(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", " ", "+", "#", "%23", "?", "%3F", "=", "%3D")
	return r.Replace(s)
}

// bar is one group of the statistics chart, with pixel heights.
type bar struct {
	Label                    string
	All, Attended, Cancelled int64
	X, HA, HC, YA, YC        int
}

func (s *server) pageStats(c *fiber.Ctx) error {
	gran := c.Query("granularity", "day")
	unit := map[string]string{"hour": "hour", "day": "day", "week": "week"}[gran]
	if unit == "" {
		gran, unit = "day", "day"
	}
	now := s.o.Now()
	spans := map[string]time.Duration{"hour": 24 * time.Hour, "day": 10 * 24 * time.Hour, "week": 12 * 7 * 24 * time.Hour}
	from, to := now.Add(-spans[gran]), now
	rows, err := statRows(c, s.o.DB, unit, from, to)
	if err != nil {
		return err
	}
	layout := map[string]string{"hour": "15시", "day": "01/02", "week": "01/02~"}[gran]
	var max int64 = 1
	for _, r := range rows {
		if r.Attended > max {
			max = r.Attended
		}
		if r.Cancelled > max {
			max = r.Cancelled
		}
	}
	const h = 180
	var bars []bar
	w := 36
	if len(rows) > 16 {
		w = 720 / len(rows)
	}
	for i, r := range rows {
		ha, hc := int(r.Attended*h/max), int(r.Cancelled*h/max)
		bars = append(bars, bar{Label: r.At.In(seoulZone).Format(layout), All: r.All, Attended: r.Attended, Cancelled: r.Cancelled,
			X: 40 + i*w, HA: ha, HC: hc, YA: 20 + h - ha, YC: 20 + h - hc})
	}
	reports, err := tasks.ListReports(c.UserContext(), s.o.Store)
	if err != nil {
		return err
	}
	for i := range reports {
		reports[i].Key = strings.TrimPrefix(reports[i].Key, tasks.ReportPrefix)
	}
	return c.Render("stats", s.view(c, dict[lang(c)]["stats"], fiber.Map{
		"Gran": gran, "Bars": bars, "BarW": w/2 - 2, "ChartW": 40 + len(bars)*w + 20, "Max": max, "Rows": rows,
		"Reports": reports,
	}), "layout")
}

func (s *server) pageJobs(c *fiber.Ctx) error {
	jobs, err := s.jobs(c)
	if err != nil {
		return err
	}
	execs, err := s.o.Engine.ListExecutions(c.UserContext(), batch.ExecutionFilter{Limit: 25})
	if err != nil {
		return err
	}
	var detail *batch.ExecutionDetail
	if v := c.Query("execution"); v != "" {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			detail, _ = s.o.Engine.Execution(c.UserContext(), id)
		}
	} else if len(execs) > 0 {
		detail, _ = s.o.Engine.Execution(c.UserContext(), execs[0].JobExecutionID)
	}
	running := false
	for _, e := range execs {
		if batch.Running(e.Status) {
			running = true
		}
	}
	return c.Render("jobs", s.view(c, dict[lang(c)]["jobs"], fiber.Map{
		"Jobs": jobs, "Executions": execs, "Detail": detail, "Refresh": running, "Error": c.Query("error"),
	}), "layout")
}

func (s *server) pageLaunch(c *fiber.Ctx) error {
	je, err := s.o.Engine.Launch(c.UserContext(), c.Params("name"), batch.Params{})
	if err != nil {
		return c.Redirect("/admin/jobs?error=" + urlQuery(err.Error()))
	}
	return c.Redirect(fmt.Sprintf("/admin/jobs?execution=%d", je.JobExecutionID))
}

func (s *server) pageControl(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return notFound("execution")
	}
	ctx := c.UserContext()
	switch c.Params("action") {
	case "stop":
		err = s.o.Engine.Stop(ctx, id)
	case "abandon":
		err = s.o.Engine.Abandon(ctx, id)
	case "restart":
		var je *batch.JobExecution
		je, err = s.o.Engine.Restart(ctx, id)
		if err == nil {
			id = je.JobExecutionID
		}
	default:
		return notFound("action")
	}
	if err != nil {
		return c.Redirect(fmt.Sprintf("/admin/jobs?execution=%d&error=%s", id, urlQuery(err.Error())))
	}
	if n := safeNext(c.FormValue("next")); n != "" {
		return c.Redirect(n) // e.g. back to the exports page
	}
	return c.Redirect(fmt.Sprintf("/admin/jobs?execution=%d", id))
}
