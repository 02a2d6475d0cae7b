package web

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
)

// The gym's product pages: packages, groups and members for admins;
// classes and notices for members. Forms go through the same gym
// validation as the API; a refused form is shown again with what was
// typed and the message next to its field, in the page's language.

func (s *server) productPageRoutes(pages, admin fiber.Router) {
	pages.Get("/me/classes", requireUserPage, s.pageClasses)
	pages.Get("/me/notices", requireUserPage, s.pageNotices)
	admin.Get("/packages", s.pagePackages)
	admin.Post("/packages", s.pagePackageSave)
	admin.Post("/packages/:id", s.pagePackageSave)
	admin.Post("/packages/:id/retire", s.pagePackageRetire)
	admin.Get("/groups", s.pageGroups)
	admin.Post("/groups", s.pageGroupSave)
	admin.Get("/groups/:id", s.pageGroup)
	admin.Post("/groups/:id", s.pageGroupSave)
	admin.Post("/groups/:id/members", s.pageGroupAdd)
	admin.Post("/groups/:id/members/:user/remove", s.pageGroupRemove)
	admin.Get("/members", s.pageMembers)
	admin.Get("/members/:id", s.pageMember)
	admin.Post("/members/:id/:action", s.pageMemberActive)
}

// optionalID is the :id of an edit route, or 0 on a create route; an id
// that is not one is 404.
func optionalID(c *fiber.Ctx) (int64, error) {
	if c.Params("id") == "" {
		return 0, nil
	}
	return pathID(c, "id")
}

// formErrors maps a field error to its field's message in the page's
// language; any other error is returned as it is.
func formErrors(c *fiber.Ctx, err error) (map[string]string, error) {
	var fe *gym.FieldError
	if errors.As(err, &fe) {
		return map[string]string{fe.Field: fieldMessage(lang(c), fe.Message)}, nil
	}
	if errors.Is(err, gym.ErrConflict) {
		return map[string]string{"": err.Error()}, nil
	}
	return nil, err
}

// fieldMessages translates the validation messages the forms can show.
var fieldMessages = map[string]string{
	"required":                                  "필수 항목입니다.",
	"at most 100 characters":                    "100자 이하로 입력하세요.",
	"at most 500 characters":                    "500자 이하로 입력하세요.",
	"must be 1 to 10000, or null for unlimited": "1~10000 사이로 입력하세요. 비우면 무제한입니다.",
	"must be 1 to 3650, or null for no end":     "1~3650일로 입력하세요. 비우면 기한이 없습니다.",
	"a whole number":                            "숫자로 입력하세요.",
	"name 1 to 1000 members":                    "회원을 1~1000명 선택하세요.",
	"this package is retired":                   "판매 중지된 상품입니다.",
}

func fieldMessage(l, msg string) string {
	if l == "ko" {
		if k, ok := fieldMessages[msg]; ok {
			return k
		}
	}
	return msg
}

// optionalInt reads a form number; empty is nil.
func optionalInt(c *fiber.Ctx, field string) (*int, error) {
	v := strings.TrimSpace(c.FormValue(field))
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, &gym.FieldError{Field: field, Message: "a whole number"}
	}
	return &n, nil
}

// packageForm reads the package form; problems lists every field at
// fault (unreadable numbers and the gym's own rules), so the page shows
// them all.
func packageForm(c *fiber.Ctx) (r gym.PackageRequest, problems []*gym.FieldError) {
	r = gym.PackageRequest{Name: c.FormValue("name")}
	var bad []*gym.FieldError
	var err error
	var fe *gym.FieldError
	if r.Count, err = optionalInt(c, "count"); errors.As(err, &fe) {
		bad = append(bad, fe)
	}
	if r.PeriodDays, err = optionalInt(c, "period_days"); errors.As(err, &fe) {
		bad = append(bad, fe)
	}
	for _, p := range r.Problems() {
		if !hasField(bad, p.Field) {
			bad = append(bad, p)
		}
	}
	return r, bad
}

func hasField(errs []*gym.FieldError, field string) bool {
	return slices.ContainsFunc(errs, func(e *gym.FieldError) bool { return e.Field == field })
}

// problemMap is problems by field, in the page's language.
func problemMap(c *fiber.Ctx, problems []*gym.FieldError) map[string]string {
	m := make(map[string]string, len(problems))
	for _, p := range problems {
		m[p.Field] = fieldMessage(lang(c), p.Message)
	}
	return m
}

func (s *server) pagePackages(c *fiber.Ctx) error {
	return s.renderPackages(c, nil, fiber.Map{})
}

func (s *server) renderPackages(c *fiber.Ctx, errs map[string]string, form fiber.Map) error {
	pkgs, err := s.gym.Packages(c.UserContext(), gym.Page{Limit: 200})
	if err != nil {
		return err
	}
	if errs != nil {
		c.Status(fiber.StatusUnprocessableEntity)
	}
	return s.render(c, "packages", "packages", fiber.Map{"Packages": pkgs, "Errors": errs, "Form": form, "OK": c.Query("ok")})
}

// pagePackageSave creates a package (POST /admin/packages) or edits one
// (POST /admin/packages/:id).
func (s *server) pagePackageSave(c *fiber.Ctx) error {
	r, problems := packageForm(c)
	id, err := optionalID(c)
	if err != nil {
		return err
	}
	errs := problemMap(c, problems)
	if len(problems) == 0 {
		var err error
		if id > 0 {
			_, err = s.gym.UpdatePackage(c.UserContext(), id, r)
		} else {
			_, err = s.gym.CreatePackage(c.UserContext(), r)
		}
		if err == nil {
			return c.Redirect("/admin/packages?ok=1")
		}
		if errs, err = formErrors(c, err); err != nil {
			return err
		}
	}
	return s.renderPackages(c, errs, fiber.Map{"ID": id, "Name": c.FormValue("name"), "Count": c.FormValue("count"), "PeriodDays": c.FormValue("period_days")})
}

func (s *server) pagePackageRetire(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.gym.RetirePackage(c.UserContext(), id); err != nil {
		return s.redirectError(c, "/admin/packages", err)
	}
	return c.Redirect("/admin/packages?ok=1")
}

func (s *server) pageGroups(c *fiber.Ctx) error { return s.renderGroups(c, nil, fiber.Map{}) }

func (s *server) renderGroups(c *fiber.Ctx, errs map[string]string, form fiber.Map) error {
	groups, err := s.gym.Groups(c.UserContext(), gym.Page{Limit: 200})
	if err != nil {
		return err
	}
	if errs != nil {
		c.Status(fiber.StatusUnprocessableEntity)
	}
	return s.render(c, "groups", "groups", fiber.Map{"Groups": groups, "Errors": errs, "Form": form})
}

// pageGroupSave creates a group (POST /admin/groups) or edits one.
func (s *server) pageGroupSave(c *fiber.Ctx) error {
	r := gym.GroupRequest{Name: c.FormValue("name"), Description: c.FormValue("description")}
	id, err := optionalID(c)
	if err != nil {
		return err
	}
	errs := problemMap(c, r.Problems())
	if len(errs) == 0 {
		var err error
		var g *gym.Group
		if id > 0 {
			g, err = s.gym.UpdateGroup(c.UserContext(), id, r)
		} else {
			g, err = s.gym.CreateGroup(c.UserContext(), r)
		}
		if err == nil {
			return c.Redirect(fmt.Sprintf("/admin/groups/%d", g.ID))
		}
		if errs, err = formErrors(c, err); err != nil {
			return err
		}
	}
	form := fiber.Map{"Name": c.FormValue("name"), "Description": c.FormValue("description")}
	if id > 0 {
		return s.renderGroup(c, id, errs, form)
	}
	return s.renderGroups(c, errs, form)
}

func (s *server) pageGroup(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	return s.renderGroup(c, id, nil, nil)
}

// renderGroup shows a group: its form, its members and, with ?q=, the
// members found to add.
func (s *server) renderGroup(c *fiber.Ctx, id int64, errs map[string]string, form fiber.Map) error {
	ctx := c.UserContext()
	g, err := s.gym.Group(ctx, id)
	if err != nil {
		return err
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	members, err := s.gym.GroupMembers(ctx, id, p)
	if err != nil {
		return err
	}
	var found []gym.Member
	if q := c.Query("q"); q != "" {
		if found, err = s.gym.Members(ctx, q, gym.Page{Limit: 20}); err != nil {
			return err
		}
	}
	if form == nil {
		form = fiber.Map{"Name": g.Name, "Description": g.Description}
	}
	if errs != nil {
		c.Status(fiber.StatusUnprocessableEntity)
	}
	ids := make([]int64, len(found))
	for i, m := range found {
		ids[i] = m.ID
	}
	in, err := s.gym.InGroup(ctx, id, ids)
	if err != nil {
		return err
	}
	return s.render(c, "group", "groups", fiber.Map{"G": g, "Members": members, "Found": found, "In": in, "Q": c.Query("q"),
		"Errors": errs, "Form": form, "Next": nextAfter(members, p, func(m gym.Member) int64 { return m.ID }), "Error": c.Query("error")})
}

func (s *server) pageGroupAdd(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	// One user_id per ticked box.
	var ids []int64
	for _, v := range c.Request().PostArgs().PeekMulti("user_id") {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && !slices.Contains(ids, n) {
			ids = append(ids, n)
		}
	}
	back := fmt.Sprintf("/admin/groups/%d", id)
	if _, err := s.gym.AddMembers(c.UserContext(), id, gym.MembersRequest{UserIDs: ids}); err != nil {
		return s.redirectError(c, back+"?q="+url.QueryEscape(c.FormValue("q")), err)
	}
	return c.Redirect(back)
}

func (s *server) pageGroupRemove(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	uid, err := pathID(c, "user")
	if err != nil {
		return err
	}
	back := fmt.Sprintf("/admin/groups/%d", id)
	if _, err := s.gym.RemoveMember(c.UserContext(), id, uid); err != nil {
		return s.redirectError(c, back, err)
	}
	return c.Redirect(back)
}

func (s *server) pageMembers(c *fiber.Ctx) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	q := c.Query("q")
	members, err := s.gym.Members(c.UserContext(), q, p)
	var fe *gym.FieldError
	if errors.As(err, &fe) {
		members, err = nil, nil
		c.Status(fiber.StatusUnprocessableEntity)
	}
	if err != nil {
		return err
	}
	var errs map[string]string
	if fe != nil {
		errs = map[string]string{fe.Field: fieldMessage(lang(c), fe.Message)}
	}
	return s.render(c, "members", "members", fiber.Map{"Members": members, "Q": q, "Errors": errs,
		"Next": nextAfter(members, p, func(m gym.Member) int64 { return m.ID }), "Paged": p.After > 0})
}

func (s *server) pageMember(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	m, err := s.gym.Member(c.UserContext(), id)
	if err != nil {
		return err
	}
	return s.render(c, "member", "members", fiber.Map{"M": m, "Now": s.o.Now(), "Error": c.Query("error")})
}

func (s *server) pageMemberActive(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	action := c.Params("action")
	if action != "deactivate" && action != "reactivate" {
		return notFound("action")
	}
	back := fmt.Sprintf("/admin/members/%d", id)
	if _, err := s.gym.SetMemberActive(c.UserContext(), id, action == "reactivate"); err != nil {
		return s.redirectError(c, back, err)
	}
	return c.Redirect(back)
}

// pageClasses is a member's classes: the upcoming ones soonest first, then
// the others latest first (paged by ?before=<unix microseconds>_<id>), each
// with its status, attendance, pass and whether a use was deducted.
func (s *server) pageClasses(c *fiber.Ctx) error {
	id := who(c)
	if id.UserID == 0 {
		return c.Redirect("/admin/members")
	}
	var cur gym.ClassCursor
	if v := c.Query("before"); v != "" {
		at, bid, ok := strings.Cut(v, "_")
		sec, err1 := strconv.ParseInt(at, 10, 64)
		n, err2 := strconv.ParseInt(bid, 10, 64)
		if !ok || err1 != nil || err2 != nil || n <= 0 {
			return invalid("before", "a cursor from this page")
		}
		cur = gym.ClassCursor{At: time.UnixMicro(sec), ID: n}
	}
	ctx, now := c.UserContext(), s.o.Now()
	var upcoming []gym.Booking
	var err error
	if cur.ID == 0 {
		if upcoming, err = s.gym.UpcomingClasses(ctx, id.UserID, now); err != nil {
			return err
		}
	}
	const per = 50
	past, err := s.gym.PastClasses(ctx, id.UserID, now, cur, per)
	if err != nil {
		return err
	}
	next := ""
	if len(past) == per {
		last := past[len(past)-1]
		next = fmt.Sprintf("%d_%d", last.StartedAt.UnixMicro(), last.ID)
	}
	m := fiber.Map{"Upcoming": upcoming, "Past": past, "Next": next, "Paged": cur.ID > 0, "Error": c.Query("error"), "OK": c.Query("ok")}
	if cur.ID == 0 {
		more, err := s.bookable(c, id.UserID, upcoming)
		if err != nil {
			return err
		}
		for k, v := range more {
			m[k] = v
		}
	}
	return s.render(c, "classes", "myClasses", m)
}

func (s *server) pageNotices(c *fiber.Ctx) error {
	id := who(c)
	if id.UserID == 0 {
		return c.Redirect("/admin/members")
	}
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	notices, err := s.gym.Notices(c.UserContext(), id.UserID, p)
	if err != nil {
		return err
	}
	return s.render(c, "notices", "myNotices", fiber.Map{"Notices": notices,
		"Next": nextAfter(notices, p, func(n gym.Notice) int64 { return n.ID }), "Paged": p.After > 0})
}

// pageLang remembers the language a user picked (a year-long cookie) and
// goes back to where they were.
func (s *server) pageLang(c *fiber.Ctx) error {
	l := c.Params("lang")
	if l != "ko" && l != "en" {
		return notFound("language")
	}
	c.Cookie(&fiber.Cookie{Name: langCookie, Value: l, Path: "/", Expires: time.Now().AddDate(1, 0, 0), SameSite: "Lax", Secure: s.o.CookieSecure})
	next := safeNext(c.Query("next"))
	if next == "" {
		next = "/"
	}
	return c.Redirect(next)
}

// langCookie holds the language a user picked.
const langCookie = "lang"
