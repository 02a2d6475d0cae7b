package web

import (
	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
)

// classRoutes are the timetable as members use it: the classes with seats
// left, booking one with a pass, cancelling a booking.
func (s *server) classRoutes(r fiber.Router) {
	r.Get("/classes", requireUser, s.apiClasses)
	r.Post("/me/bookings", requireMember, s.apiBook)
	r.Delete("/me/bookings/:id", requireMember, func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		b, err := s.gym.CancelBooking(c.UserContext(), who(c).UserID, id, s.o.BookingCancelCutoff)
		if err != nil {
			return err
		}
		return c.JSON(b)
	})
}

// apiClasses lists the classes starting in the query's from and to.
func (s *server) apiClasses(c *fiber.Ctx) error {
	from, to, err := queryRange(c)
	if err != nil {
		return err
	}
	out, err := s.gym.Classes(c.UserContext(), from, to)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"items": out})
}

// requireMember lets members' sessions through: 401 without one, 403 for
// the admin token, which books nothing.
func requireMember(c *fiber.Ctx) error {
	id := who(c)
	if id == nil {
		return authError(c)
	}
	if id.UserID == 0 {
		return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "the admin token is not a member"}
	}
	return c.Next()
}

// apiBook books a class with the request's Idempotency-Key honoured: 201
// with the booking, or the first answer again on a repeat.
func (s *server) apiBook(c *fiber.Ctx) error {
	var req gym.BookRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	idem, err := idempotencyOf(c)
	if err != nil {
		return err
	}
	b, replay, err := s.gym.Book(c.UserContext(), who(c).UserID, req, idem)
	if err != nil {
		return err
	}
	if replay != nil {
		c.Set("Idempotent-Replayed", "true")
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Status(fiber.StatusCreated).Send(replay)
	}
	return c.Status(fiber.StatusCreated).JSON(b)
}

// adminClassRoutes run the timetable: create (a weekly series at once),
// edit, cancel, and mark attendance.
func (s *server) adminClassRoutes(a fiber.Router) {
	a.Get("/classes", s.apiClasses)
	a.Post("/classes", func(c *fiber.Ctx) error {
		var in gym.ClassInput
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
		out, err := s.gym.CreateClasses(c.UserContext(), in)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"items": out})
	})
	a.Get("/classes/:id", classHandler(func(c *fiber.Ctx, id int64) (any, error) {
		return s.gym.ClassWithBookings(c.UserContext(), id)
	}))
	a.Put("/classes/:id", classHandler(func(c *fiber.Ctx, id int64) (any, error) {
		var in gym.ClassInput
		if err := decodeJSON(c, &in); err != nil {
			return nil, err
		}
		return s.gym.UpdateClass(c.UserContext(), id, in)
	}))
	a.Post("/classes/:id/cancel", classHandler(func(c *fiber.Ctx, id int64) (any, error) {
		out, n, err := s.gym.CancelClass(c.UserContext(), id)
		return fiber.Map{"class": out, "cancelled_bookings": n}, err
	}))
	a.Put("/classes/:id/attendance", classHandler(func(c *fiber.Ctx, id int64) (any, error) {
		var req struct {
			Attended []int64 `json:"attended"` // member ids
		}
		if err := decodeJSON(c, &req); err != nil {
			return nil, err
		}
		n, err := s.gym.MarkAttendance(c.UserContext(), id, req.Attended)
		return fiber.Map{"attended": n}, err
	}))
}

// classHandler answers a route on class :id with fn's value as JSON.
func classHandler(fn func(c *fiber.Ctx, id int64) (any, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		out, err := fn(c, id)
		if err != nil {
			return err
		}
		return c.JSON(out)
	}
}
