package web

import (
	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
)

// memberRoutes are the admin API of packages (edit, retire), user groups
// and their members, and members (DESIGN §9, "Product surface").
func (s *server) memberRoutes(a fiber.Router) {
	a.Get("/packages/:id", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		return jsonOr(c, fiber.StatusOK)(s.gym.Package(c.UserContext(), id))
	})
	a.Patch("/packages/:id", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		if err := decodeJSON(c, &map[string]any{}); err != nil {
			return err
		}
		return jsonOr(c, fiber.StatusOK)(s.gym.PatchPackage(c.UserContext(), id, c.Body()))
	})
	a.Post("/packages/:id/retire", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		return jsonOr(c, fiber.StatusOK)(s.gym.RetirePackage(c.UserContext(), id))
	})
	s.groupRoutes(a)
	a.Get("/members", func(c *fiber.Ctx) error {
		p, err := pageOf(c)
		if err != nil {
			return err
		}
		out, err := s.gym.Members(c.UserContext(), c.Query("q"), p)
		if err != nil {
			return err
		}
		return c.JSON(list(out, func(m gym.Member) int64 { return m.ID }, p))
	})
	a.Get("/members/:id", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		return jsonOr(c, fiber.StatusOK)(s.gym.Member(c.UserContext(), id))
	})
	for action, active := range map[string]bool{"deactivate": false, "reactivate": true} {
		a.Post("/members/:id/"+action, func(c *fiber.Ctx) error {
			id, err := pathID(c, "id")
			if err != nil {
				return err
			}
			return jsonOr(c, fiber.StatusOK)(s.gym.SetMemberActive(c.UserContext(), id, active))
		})
	}
}

func (s *server) groupRoutes(a fiber.Router) {
	a.Get("/user-groups", func(c *fiber.Ctx) error {
		p, err := pageOf(c)
		if err != nil {
			return err
		}
		out, err := s.gym.Groups(c.UserContext(), p)
		if err != nil {
			return err
		}
		return c.JSON(list(out, func(g gym.Group) int64 { return g.ID }, p))
	})
	a.Post("/user-groups", func(c *fiber.Ctx) error {
		var req gym.GroupRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		return jsonOr(c, fiber.StatusCreated)(s.gym.CreateGroup(c.UserContext(), req))
	})
	a.Get("/user-groups/:id", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		return jsonOr(c, fiber.StatusOK)(s.gym.Group(c.UserContext(), id))
	})
	a.Patch("/user-groups/:id", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		g, err := s.gym.Group(c.UserContext(), id)
		if err != nil {
			return err
		}
		req := gym.GroupRequest{Name: g.Name, Description: g.Description}
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		return jsonOr(c, fiber.StatusOK)(s.gym.UpdateGroup(c.UserContext(), id, req))
	})
	s.groupMemberRoutes(a)
}

// groupMemberRoutes list, add and remove a group's members.
func (s *server) groupMemberRoutes(a fiber.Router) {
	a.Get("/user-groups/:id/members", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		p, err := pageOf(c)
		if err != nil {
			return err
		}
		out, err := s.gym.GroupMembers(c.UserContext(), id, p)
		if err != nil {
			return err
		}
		return c.JSON(list(out, func(m gym.Member) int64 { return m.ID }, p))
	})
	a.Post("/user-groups/:id/members", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		var req gym.MembersRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		return jsonOr(c, fiber.StatusOK)(s.gym.AddMembers(c.UserContext(), id, req))
	})
	a.Delete("/user-groups/:id/members/:user", func(c *fiber.Ctx) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		uid, err := pathID(c, "user")
		if err != nil {
			return err
		}
		return jsonOr(c, fiber.StatusOK)(s.gym.RemoveMember(c.UserContext(), id, uid))
	})
}

// meRoutes are a member's own bookings and notices.
func (s *server) meRoutes(r fiber.Router) {
	r.Get("/me/bookings", requireUser, s.mine(func(c *fiber.Ctx, uid int64, p gym.Page) (fiber.Map, error) {
		out, err := s.gym.Bookings(c.UserContext(), uid, p)
		return list(out, func(b gym.Booking) int64 { return b.ID }, p), err
	}))
	r.Get("/me/notifications", requireUser, s.mine(func(c *fiber.Ctx, uid int64, p gym.Page) (fiber.Map, error) {
		out, err := s.gym.Notices(c.UserContext(), uid, p)
		return list(out, func(n gym.Notice) int64 { return n.ID }, p), err
	}))
}

// mine answers a member's own list, paged newest first (after = the last
// id seen).
func (s *server) mine(fn func(c *fiber.Ctx, uid int64, p gym.Page) (fiber.Map, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := who(c)
		if id.UserID == 0 {
			return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "the admin token is not a member; see /api/admin/members/:id"}
		}
		p, err := pageOf(c)
		if err != nil {
			return err
		}
		m, err := fn(c, id.UserID, p)
		if err != nil {
			return err
		}
		return c.JSON(m)
	}
}

// jsonOr answers v with status, or the error.
func jsonOr(c *fiber.Ctx, status int) func(v any, err error) error {
	return func(v any, err error) error {
		if err != nil {
			return err
		}
		return c.Status(status).JSON(v)
	}
}
