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

// The timetable's pages: members book and cancel on /me/classes; admins
// run the week on /admin/classes and a class's attendance on its page.

func (s *server) classPageRoutes(pages, admin fiber.Router) {
	pages.Post("/me/bookings", requireUserPage, s.pageBook)
	pages.Post("/me/bookings/:id/cancel", requireUserPage, s.pageCancelBooking)
	admin.Get("/classes", s.pageTimetable)
	admin.Post("/classes", s.pageClassCreate)
	admin.Get("/classes/:id", s.pageClass)
	admin.Post("/classes/:id", s.pageClassEdit)
	admin.Post("/classes/:id/attendance", s.pageAttendance)
	admin.Post("/classes/:id/cancel", s.pageClassCancel)
}

// bookable is what /me/classes offers: the week's classes, the member's
// passes that can book, and which classes they booked.
func (s *server) bookable(c *fiber.Ctx, uid int64, upcoming []gym.Booking) (fiber.Map, error) {
	ctx := c.UserContext()
	classes, err := s.gym.Classes(ctx, s.o.Now(), time.Time{})
	if err != nil {
		return nil, err
	}
	passes, err := s.gym.Passes(ctx, uid, gym.Page{Limit: 200})
	if err != nil {
		return nil, err
	}
	var usable []gym.Pass
	for _, p := range passes {
		if p.Status == models.PassProgressed {
			usable = append(usable, p)
		}
	}
	booked := map[int64]int64{} // class -> booking
	for _, b := range upcoming {
		if b.ClassID != nil {
			booked[*b.ClassID] = b.ID
		}
	}
	return fiber.Map{"Timetable": classes, "Usable": usable, "Booked": booked}, nil
}

func (s *server) pageBook(c *fiber.Ctx) error {
	classID, _ := strconv.ParseInt(c.FormValue("class_id"), 10, 64)
	passID, _ := strconv.ParseInt(c.FormValue("pass_id"), 10, 64)
	if _, _, err := s.gym.Book(c.UserContext(), who(c).UserID, gym.BookRequest{ClassID: classID, PassID: passID}, nil); err != nil {
		return s.redirectError(c, "/me/classes", err)
	}
	return c.Redirect("/me/classes?ok=booked")
}

func (s *server) pageCancelBooking(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	if _, err := s.gym.CancelBooking(c.UserContext(), who(c).UserID, id, s.o.BookingCancelCutoff); err != nil {
		return s.redirectError(c, "/me/classes", err)
	}
	return c.Redirect("/me/classes?ok=cancelled")
}

// weekOf is the Monday (in the gym's zone) of the week the query's week
// (a date) falls in, or of this week.
func (s *server) weekOf(c *fiber.Ctx) (time.Time, error) {
	day := s.o.Now().In(models.Seoul)
	if v := c.Query("week"); v != "" {
		t, err := time.ParseInLocation("2006-01-02", strings.ReplaceAll(v, ".", "-"), models.Seoul)
		if err != nil {
			return time.Time{}, invalid("week", "a date (2026-12-07)")
		}
		day = t
	}
	y, m, d := day.Date()
	monday := time.Date(y, m, d, 0, 0, 0, 0, models.Seoul)
	return monday.AddDate(0, 0, -((int(monday.Weekday()) + 6) % 7)), nil
}

// timetableDay is one day's column of the week view.
type timetableDay struct {
	Day     time.Time
	Classes []gym.Class
}

func (s *server) pageTimetable(c *fiber.Ctx) error {
	monday, err := s.weekOf(c)
	if err != nil {
		return err
	}
	classes, err := s.gym.Classes(c.UserContext(), monday, monday.AddDate(0, 0, 7))
	if err != nil {
		return err
	}
	days := make([]timetableDay, 7)
	for i := range days {
		days[i].Day = monday.AddDate(0, 0, i)
	}
	for _, cl := range classes {
		i := int(cl.StartedAt.In(models.Seoul).Sub(monday).Hours() / 24)
		if i >= 0 && i < 7 {
			days[i].Classes = append(days[i].Classes, cl)
		}
	}
	return s.render(c, "timetable", "timetable", fiber.Map{"Days": days, "Monday": monday,
		"Prev": monday.AddDate(0, 0, -7).Format("2006-01-02"), "Next": monday.AddDate(0, 0, 7).Format("2006-01-02"),
		"Error": c.Query("error"), "OK": c.Query("ok")})
}

// classForm reads the create form: a date and start and end times in the
// gym's zone.
func classForm(c *fiber.Ctx) (gym.ClassInput, error) {
	in := gym.ClassInput{Title: c.FormValue("title"), Trainer: c.FormValue("trainer"), Place: c.FormValue("place")}
	var err error
	at := func(field, clock string) time.Time {
		t, perr := time.ParseInLocation("2006-01-02 15:04", c.FormValue("date")+" "+clock, models.Seoul)
		if perr != nil && err == nil {
			err = &gym.FieldError{Field: field, Message: "a date and a time (2026-12-07, 19:00)"}
		}
		return t
	}
	in.StartedAt, in.EndedAt = at("started_at", c.FormValue("start")), at("ended_at", c.FormValue("end"))
	if in.Capacity, _ = strconv.Atoi(c.FormValue("capacity")); in.Capacity == 0 && err == nil {
		err = &gym.FieldError{Field: "capacity", Message: "1 to 1000"}
	}
	in.RepeatWeeks, _ = strconv.Atoi(c.FormValue("repeat_weeks"))
	return in, err
}

func (s *server) pageClassCreate(c *fiber.Ctx) error {
	in, err := classForm(c)
	if err == nil {
		var out []gym.Class
		if out, err = s.gym.CreateClasses(c.UserContext(), in); err == nil {
			return c.Redirect(fmt.Sprintf("/admin/classes?week=%s&ok=%d", in.StartedAt.In(models.Seoul).Format("2006-01-02"), len(out)))
		}
	}
	return s.redirectError(c, "/admin/classes", err)
}

func (s *server) pageClass(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	d, err := s.gym.ClassWithBookings(c.UserContext(), id)
	if err != nil {
		return err
	}
	return s.render(c, "class", "class", fiber.Map{"C": d, "Started": !d.StartedAt.After(s.o.Now()),
		"Ended": !d.EndedAt.After(s.o.Now()), "Error": c.Query("error"), "OK": c.Query("ok")})
}

func (s *server) pageAttendance(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	var came []int64
	for _, v := range c.Request().PostArgs().PeekMulti("attended") {
		if u, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64); err == nil {
			came = append(came, u)
		}
	}
	back := fmt.Sprintf("/admin/classes/%d", id)
	if _, err := s.gym.MarkAttendance(c.UserContext(), id, came); err != nil {
		return s.redirectError(c, back, err)
	}
	return c.Redirect(back + "?ok=attendance")
}

func (s *server) pageClassCancel(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	back := fmt.Sprintf("/admin/classes/%d", id)
	if _, _, err := s.gym.CancelClass(c.UserContext(), id); err != nil {
		return s.redirectError(c, back, err)
	}
	return c.Redirect(back + "?ok=cancelled")
}

func (s *server) pageClassEdit(c *fiber.Ctx) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	back := fmt.Sprintf("/admin/classes/%d", id)
	in, err := classForm(c)
	if err == nil {
		_, err = s.gym.UpdateClass(c.UserContext(), id, in)
	}
	if err != nil {
		return s.redirectError(c, back, err)
	}
	return c.Redirect(back + "?ok=saved")
}
