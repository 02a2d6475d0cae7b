package web

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/hibiken/asynqmon"

	"github.com/passbatch/passbatch/models"
)

// The pages speak Korean by default and English when the browser asks.
var dict = map[string]map[string]string{
	"ko": {
		"title": "패스배치", "login": "로그인", "logout": "로그아웃", "email": "이메일", "password": "비밀번호",
		"myPasses": "내 이용권", "bulk": "일괄 지급", "stats": "통계", "jobs": "배치 작업", "monitoring": "큐 모니터링",
		"remaining": "남은 횟수", "unlimited": "무제한", "times": "회", "period": "기간", "noEnd": "기한 없음",
		"READY": "시작 전", "PROGRESSED": "진행 중", "EXPIRED": "만료", "noPasses": "이용권이 없습니다.",
		"badLogin": "이메일 또는 비밀번호가 올바르지 않습니다.", "tooMany": "로그인 시도가 너무 많습니다. 잠시 후 다시 시도하세요.", "package": "이용권 상품", "group": "회원 그룹",
		"users": "회원 번호 (쉼표로 구분)", "grantAt": "지급 시각", "count": "횟수 (비우면 상품 기본값)", "grant": "지급 예약",
		"granted": "지급 예약됨", "status": "상태", "start": "시작", "end": "종료", "issued": "지급", "or": "또는",
		"hourly": "시간별", "daily": "일별", "weekly": "주별", "all": "전체", "attended": "출석", "cancelled": "취소",
		"reports": "보고서 파일", "noReports": "아직 보고서가 없습니다.", "launch": "실행", "schedule": "일정", "nextTick": "다음", "notScheduled": "수동 실행",
		"lastRun": "마지막 실행", "executions": "실행 기록", "steps": "단계", "progress": "진행률", "stop": "중지",
		"restart": "재시작", "resumeHint": "끝난 파티션은 건너뛰고 이어서 만듭니다", "abandon": "포기", "recover": "복구(FAILED로)", "recoverHint": "프로세스가 죽고 태스크가 사라진 실행을 FAILED로 끝냅니다. 살아 있는 워커가 잡고 있으면 거부합니다", "transitions": "흐름", "launchNext": "새 인스턴스", "launchNextHint": "run.id를 하나 올려 새 인스턴스로 실행", "read": "읽음", "write": "기록", "skip": "건너뜀", "skipped": "건너뛴 항목",
		"never": "실행 기록 없음", "from": "시작", "to": "끝", "show": "보기", "autoRefresh": "5초마다 새로 고침",
		"chartTitle": "최근 예약 현황", "forbidden": "권한이 없습니다.", "ready": "대기",
		"exports": "데이터 내보내기", "kind": "종류", "format": "형식", "request": "내보내기 요청", "force": "같은 요청도 새로 만들기",
		"nobom": "CSV BOM 없이", "nobomHint": "BOM 없는 CSV는 프로그램용입니다. 엑셀에서 두 번 클릭으로 열면 한글이 깨집니다.",
		"download": "다운로드", "rows": "행", "requested": "요청됨", "kindpasses": "이용권", "kindbookings": "예약", "kindstatistics": "통계",
		"execution": "실행 상세", "params": "파라미터", "identifying": "식별", "item": "항목", "phase": "단계", "reason": "사유", "when": "시각",
		"more": "더 보기", "noSkips": "건너뛴 항목이 없습니다.", "timeline": "타임라인", "rate": "처리량", "eta": "남은 시간",
		"partitions": "파티션", "partition": "파티션", "keys": "키 범위", "worker": "워커", "lastUpdate": "마지막 갱신", "straggler": "지연",
		"filter": "조회", "older": "이전 기록", "newer": "최신 기록", "recent": "최근 실행",
		"packages": "이용권 상품", "groups": "회원 그룹", "members": "회원", "myClasses": "내 수업", "myNotices": "내 알림",
		"name": "이름", "description": "설명", "countField": "횟수 (비우면 무제한)", "periodField": "기간(일) (비우면 기한 없음)",
		"create": "만들기", "save": "저장", "retire": "판매 중지", "retired": "판매 중지됨", "active": "판매 중", "days": "일",
		"saved": "저장했습니다.", "memberCount": "회원 수", "add": "추가", "remove": "빼기", "search": "검색", "searchHint": "이름, 이메일, 전화번호",
		"phone": "전화번호", "ACTIVE": "활동", "INACTIVE": "비활성", "deactivate": "비활성화", "reactivate": "다시 활성화",
		"noMembers": "회원이 없습니다.", "alreadyIn": "이미 그룹에 있음", "bookings": "예약", "notices": "알림", "passes": "이용권",
		"upcoming": "다가오는 수업", "past": "지난 수업", "noClasses": "수업이 없습니다.", "usedPass": "횟수 차감", "yes": "예", "no": "아니오",
		"bREADY": "예약됨", "bCOMPLETED": "완료", "bCANCELLED": "취소됨", "class": "수업", "noNotices": "받은 알림이 없습니다.", "sent": "보냄", "pending": "보내는 중", "failedSend": "보내지 못함",
		"BEFORE_CLASS": "수업 전 알림", "BEFORE_EXPIRY": "만료 전 알림", "endsOn": "종료일", "daysLeft": "남은 기간", "startsOn": "시작일",
		"notStarted": "아직 시작 전입니다", "lastUse": "마지막 1회 남음", "endsToday": "오늘 종료", "noticesAboutPass": "이 이용권 관련 알림", "whyUse": "차감 내역은 내 수업에서 볼 수 있습니다",
		"groupsOf": "소속 그룹", "joined": "가입", "role": "역할", "inactiveHint": "비활성 회원은 로그인할 수 없고 일괄 지급을 받지 않습니다.", "retireHint": "판매 중지하면 새로 지급할 수 없고, 이미 지급된 이용권은 그대로 쓸 수 있습니다.",
		"language":  "언어",
		"timetable": "시간표", "book": "예약", "cancelBooking": "예약 취소", "seatsLeft": "남은 자리", "trainer": "강사", "place": "장소",
		"full": "마감", "bookedIt": "예약함", "classTitle": "수업명", "capacity": "정원", "repeatWeeks": "매주 반복(주)", "date": "날짜",
		"startTime": "시작 시각", "endTime": "끝 시각", "attendance": "출석", "saveAttendance": "출석 저장", "cancelClass": "수업 취소",
		"cancelClassHint": "예약한 회원 모두의 예약이 취소되고 알림이 갑니다.", "prevWeek": "지난주", "nextWeek": "다음주", "classCreated": "수업을 만들었습니다",
		"noPassToBook": "예약할 수 있는 이용권이 없습니다.", "okbooked": "예약했습니다.", "okcancelled": "취소했습니다.", "okattendance": "출석을 저장했습니다.", "oksaved": "저장했습니다.",
		"OPEN": "예약 가능", "CANCELLED": "취소됨", "cutoffHint": "수업 시작 1시간 전까지 취소할 수 있습니다.", "CLASS_CANCELLED": "수업 취소 알림",
	},
	"en": {
		"title": "passbatch", "login": "Log in", "logout": "Log out", "email": "Email", "password": "Password",
		"myPasses": "My passes", "bulk": "Bulk grants", "stats": "Statistics", "jobs": "Jobs", "monitoring": "Queues",
		"remaining": "Uses left", "unlimited": "Unlimited", "times": "", "period": "Period", "noEnd": "no end",
		"READY": "Not started", "PROGRESSED": "Active", "EXPIRED": "Expired", "noPasses": "You have no passes.",
		"badLogin": "Wrong email or password.", "tooMany": "Too many failed logins; try again in a minute.", "package": "Package", "group": "User group",
		"users": "User ids (comma-separated)", "grantAt": "Grant at", "count": "Uses (empty: the package's)", "grant": "Schedule grant",
		"granted": "Grant scheduled", "status": "Status", "start": "Start", "end": "End", "issued": "Granted", "or": "or",
		"hourly": "Hourly", "daily": "Daily", "weekly": "Weekly", "all": "All", "attended": "Attended", "cancelled": "Cancelled",
		"reports": "Report files", "noReports": "No reports yet.", "launch": "Run", "schedule": "Schedule", "nextTick": "next", "notScheduled": "manual",
		"lastRun": "Last run", "executions": "Executions", "steps": "Steps", "progress": "Progress", "stop": "Stop",
		"restart": "Restart", "resumeHint": "Resumes from the finished partitions", "abandon": "Abandon", "recover": "Recover (mark FAILED)", "recoverHint": "Ends an execution whose processes died and whose tasks are gone as FAILED; refused while a live worker holds it", "transitions": "Transitions", "launchNext": "New instance", "launchNextHint": "Launch a new instance with run.id one more than the last", "read": "Read", "write": "Written", "skip": "Skipped", "skipped": "Skipped items",
		"never": "never run", "from": "From", "to": "To", "show": "Show", "autoRefresh": "refreshes every 5 s",
		"chartTitle": "Bookings", "forbidden": "You are not allowed here.", "ready": "Waiting",
		"exports": "Exports", "kind": "Kind", "format": "Format", "request": "Request export", "force": "new even if identical",
		"nobom": "CSV without BOM", "nobomHint": "A CSV without a BOM is for programs: Excel opened by double-click garbles Korean in it.",
		"download": "Download", "rows": "rows", "requested": "Requested", "kindpasses": "Passes", "kindbookings": "Bookings", "kindstatistics": "Statistics",
		"execution": "Execution", "params": "Parameters", "identifying": "identifying", "item": "Item", "phase": "Phase", "reason": "Reason", "when": "When",
		"more": "More", "noSkips": "No skipped items.", "timeline": "Timeline", "rate": "Items/s", "eta": "ETA",
		"partitions": "partitions", "partition": "Partition", "keys": "Keys", "worker": "Worker", "lastUpdate": "Last update", "straggler": "straggler",
		"filter": "Filter", "older": "Older", "newer": "Newest", "recent": "Recent runs",
		"packages": "Packages", "groups": "User groups", "members": "Members", "myClasses": "My classes", "myNotices": "My notices",
		"name": "Name", "description": "Description", "countField": "Uses (empty: unlimited)", "periodField": "Period in days (empty: no end)",
		"create": "Create", "save": "Save", "retire": "Retire", "retired": "Retired", "active": "On sale", "days": "days",
		"saved": "Saved.", "memberCount": "Members", "add": "Add", "remove": "Remove", "search": "Search", "searchHint": "name, email, phone",
		"phone": "Phone", "ACTIVE": "Active", "INACTIVE": "Inactive", "deactivate": "Deactivate", "reactivate": "Reactivate",
		"noMembers": "No members.", "alreadyIn": "already in the group", "bookings": "Bookings", "notices": "Notices", "passes": "Passes",
		"upcoming": "Upcoming classes", "past": "Past classes", "noClasses": "No classes.", "usedPass": "Use deducted", "yes": "yes", "no": "no",
		"bREADY": "Booked", "bCOMPLETED": "Done", "bCANCELLED": "Cancelled", "class": "Class", "noNotices": "No notices yet.", "sent": "sent", "pending": "sending", "failedSend": "not delivered",
		"BEFORE_CLASS": "Class reminder", "BEFORE_EXPIRY": "Expiry warning", "endsOn": "Ends", "daysLeft": "Days left", "startsOn": "Starts",
		"notStarted": "Not started yet", "lastUse": "One use left", "endsToday": "Ends today", "noticesAboutPass": "Notices about this pass", "whyUse": "Deducted uses are listed in My classes",
		"groupsOf": "Groups", "joined": "Joined", "role": "Role", "inactiveHint": "Inactive members cannot log in and get no bulk grants.", "retireHint": "A retired package cannot be granted; passes already granted keep working.",
		"language":  "Language",
		"timetable": "Timetable", "book": "Book", "cancelBooking": "Cancel booking", "seatsLeft": "Seats left", "trainer": "Trainer", "place": "Place",
		"full": "Full", "bookedIt": "Booked", "classTitle": "Title", "capacity": "Capacity", "repeatWeeks": "Repeat weekly (weeks)", "date": "Date",
		"startTime": "Starts", "endTime": "Ends", "attendance": "Attendance", "saveAttendance": "Save attendance", "cancelClass": "Cancel class",
		"cancelClassHint": "Every booking is cancelled and its member notified.", "prevWeek": "Previous week", "nextWeek": "Next week", "classCreated": "Classes created",
		"noPassToBook": "You have no pass to book with.", "okbooked": "Booked.", "okcancelled": "Cancelled.", "okattendance": "Attendance saved.", "oksaved": "Saved.",
		"OPEN": "Open", "CANCELLED": "Cancelled", "cutoffHint": "Bookings can be cancelled until an hour before the class.", "CLASS_CANCELLED": "Class cancelled",
	},
}

// lang is the page's language: the one picked in the header (remembered in
// a cookie), else English when the browser asks for it first, else Korean.
func lang(c *fiber.Ctx) string {
	if l := c.Cookies(langCookie); l == "ko" || l == "en" {
		return l
	}
	if strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderAcceptLanguage)), "en") {
		return "en"
	}
	return "ko"
}

// render renders page tmpl in the layout with what every page gets: the
// dictionary, the title (a dictionary key), who is logged in and the
// CSRF token of its forms.
func (s *server) render(c *fiber.Ctx, tmpl, title string, m fiber.Map) error {
	l := lang(c)
	m["L"] = dict[l]
	m["Lang"] = l
	m["Title"] = dict[l][title]
	m["Me"] = who(c)
	m["CSRF"] = s.csrfToken(c)
	m["Path"] = c.Path()
	m["URI"] = backTo(c)
	return c.Render(tmpl, m, "layout")
}

// redirectError sends a failed form back to page with the reason.
func (s *server) redirectError(c *fiber.Ctx, page string, err error) error {
	ae := asAPIError(err)
	if ae == nil {
		return err
	}
	msg := ae.Message
	if ae.Field != "" {
		msg = ae.Field + ": " + msg
	}
	sep := "?"
	if strings.Contains(page, "?") {
		sep = "&"
	}
	return c.Redirect(page + sep + "error=" + url.QueryEscape(msg))
}

// loginRedirect sends a visitor without a session to /login, to come back.
func loginRedirect(c *fiber.Ctx) error {
	return c.Redirect("/login?next=" + url.QueryEscape(c.OriginalURL()))
}

// requireUserPage sends visitors without a session to /login.
func requireUserPage(c *fiber.Ctx) error {
	if who(c) == nil {
		if err := authError(c); err != errUnauthenticated {
			return err
		}
		return loginRedirect(c)
	}
	return c.Next()
}

func (s *server) requireAdminPage(c *fiber.Ctx) error {
	id := who(c)
	if id == nil {
		if err := authError(c); err != errUnauthenticated {
			return err
		}
		return loginRedirect(c)
	}
	if !id.Admin {
		c.Status(fiber.StatusForbidden)
		return s.render(c, "forbidden", "forbidden", fiber.Map{})
	}
	return c.Next()
}

func (s *server) pageRoutes(app *fiber.App) {
	if s.o.Redis != nil {
		mon := asynqmon.New(asynqmon.Options{RootPath: "/admin/monitoring", RedisConnOpt: s.o.Redis, ReadOnly: !s.o.AsynqmonWritable})
		h := adaptor.HTTPHandler(mon)
		app.All("/admin/monitoring", s.requireAdminPage, s.originGuard, h)
		app.All("/admin/monitoring/*", s.requireAdminPage, s.originGuard, h)
	}
	pages := app.Group("", s.csrfGuard)
	pages.Get("/", func(c *fiber.Ctx) error {
		if id := who(c); id != nil && id.Admin {
			return c.Redirect("/admin/statistics")
		}
		return c.Redirect("/me/passes")
	})
	pages.Get("/login", func(c *fiber.Ctx) error {
		return s.render(c, "login", "login", fiber.Map{"Next": safeNext(c.Query("next"))})
	})
	pages.Post("/login", s.pageLogin)
	pages.Post("/logout", func(c *fiber.Ctx) error {
		if err := s.logout(c); err != nil {
			return err
		}
		return c.Redirect("/login")
	})
	pages.Get("/me/passes", s.pagePasses) // checks the session itself
	pages.Get("/lang/:lang", s.pageLang)
	admin := pages.Group("/admin", s.requireAdminPage)
	s.productPageRoutes(pages, admin)
	s.classPageRoutes(pages, admin)
	admin.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/admin/statistics") })
	admin.Get("/bulk-passes", s.pageBulk)
	admin.Post("/bulk-passes", s.pageBulkCreate)
	admin.Get("/statistics", s.pageStats)
	admin.Get("/jobs", s.pageJobs)
	admin.Post("/jobs/:name/launch", s.pageLaunch)
	admin.Get("/executions/:id", s.pageExecution)
	admin.Get("/executions/:id/live", s.pageExecutionLive)
	admin.Post("/executions/:id/:action", s.pageControl)
	admin.Get("/exports", s.pageExports)
	admin.Post("/exports", s.pageExportCreate)
}

// backTo is where the language switch returns: this page, or after a
// refused form (a POST) the page the form was on.
func backTo(c *fiber.Ctx) string {
	if c.Method() == fiber.MethodGet {
		return string(c.Request().URI().RequestURI())
	}
	if u, err := url.Parse(c.Get(fiber.HeaderReferer)); err == nil {
		return safeNext(u.RequestURI())
	}
	return ""
}

// safeNext keeps a post-login redirect on this site: a path of ours, with
// no control character (a header injection, or a tab a browser drops to
// make "/\t/evil" into "//evil"), no backslash, no scheme or host.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//") || strings.ContainsAny(n, "\\") {
		return ""
	}
	for _, r := range n {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	if u, err := url.Parse(n); err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return n
}

func (s *server) pageLogin(c *fiber.Ctx) error {
	u, err := s.login(c, c.FormValue("email"), c.FormValue("password"))
	if err != nil && err != errLoginLimited {
		return err
	}
	if u == nil {
		msg := dict[lang(c)]["badLogin"]
		if err == errLoginLimited {
			msg = dict[lang(c)]["tooMany"]
			c.Status(fiber.StatusTooManyRequests)
		} else {
			c.Status(fiber.StatusUnauthorized)
		}
		return s.render(c, "login", "login", fiber.Map{"Error": msg, "Email": c.FormValue("email"), "Next": safeNext(c.FormValue("next"))})
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
