package web

import (
	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
)

func (s *server) passRoutes(r fiber.Router) {
	r.Get("/me/passes", requireUser, func(c *fiber.Ctx) error {
		id := who(c)
		if id.UserID == 0 {
			return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "the admin token has no passes; use /api/users/:id/passes"}
		}
		return s.apiPasses(c, id.UserID)
	})
	r.Get("/users/:id/passes", requireUser, func(c *fiber.Ctx) error {
		uid, err := pathID(c, "id")
		if err != nil {
			return err
		}
		if id := who(c); !id.Admin && id.UserID != uid {
			return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "you can see only your own passes"}
		}
		return s.apiPasses(c, uid)
	})
}

func (s *server) apiPasses(c *fiber.Ctx, userID int64) error {
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	out, err := s.gym.Passes(c.UserContext(), userID, p)
	if err != nil {
		return err
	}
	return c.JSON(list(out, func(p gym.Pass) int64 { return p.ID }, p))
}

func (s *server) pagePasses(c *fiber.Ctx) error {
	id := who(c)
	if id.UserID == 0 {
		return c.Redirect("/admin/statistics")
	}
	passes, err := s.gym.Passes(c.UserContext(), id.UserID, gym.Page{Limit: 200})
	if err != nil {
		return err
	}
	return s.render(c, "passes", "myPasses", fiber.Map{"Passes": passes, "Now": s.o.Now()})
}
