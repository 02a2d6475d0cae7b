package web

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
)

func (s *server) passRoutes(r fiber.Router) {
	r.Get("/me/passes", s.apiMyPasses)
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

// apiMyPasses is the members' busiest route: a session not yet checked is
// checked by the statement that reads the passes.
func (s *server) apiMyPasses(c *fiber.Ctx) error {
	cl := claimOf(c)
	if cl == nil {
		id := who(c)
		if id == nil {
			return authError(c)
		}
		if id.UserID == 0 {
			return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "the admin token has no passes; use /api/users/:id/passes"}
		}
		return s.apiPasses(c, id.UserID)
	}
	p, err := pageOf(c)
	if err != nil {
		if who(c) == nil {
			return authError(c)
		}
		return err
	}
	out, err := s.sessionPasses(c, cl, p)
	if err != nil {
		return err
	}
	return c.JSON(list(out, func(p gym.Pass) int64 { return p.ID }, p))
}

// sessionPasses reads the passes of claim cl's member and settles the
// claim with the same statement: errUnauthenticated if the session is over.
func (s *server) sessionPasses(c *fiber.Ctx, cl *claim, p gym.Page) ([]gym.Pass, error) {
	me, out, err := s.gym.SessionPasses(c.UserContext(), cl.userID, cl.epoch, p)
	switch {
	case errors.Is(err, gym.ErrNoSession):
		settle(c, cl, nil, nil)
		return nil, errUnauthenticated
	case err != nil:
		settle(c, cl, nil, err)
		return nil, err
	}
	settle(c, cl, &identity{UserID: cl.userID, Name: me.Name, Admin: me.Admin}, nil)
	return out, nil
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
	var passes []gym.Pass
	var err error
	if cl := claimOf(c); cl != nil {
		passes, err = s.sessionPasses(c, cl, gym.Page{Limit: 200})
		if errors.Is(err, errUnauthenticated) {
			return loginRedirect(c)
		}
	} else {
		id := who(c)
		switch {
		case id == nil && authError(c) == errUnauthenticated:
			return loginRedirect(c)
		case id == nil:
			return authError(c)
		case id.UserID == 0:
			return c.Redirect("/admin/statistics")
		}
		passes, err = s.gym.Passes(c.UserContext(), id.UserID, gym.Page{Limit: 200})
	}
	if err != nil {
		return err
	}
	return s.render(c, "passes", "myPasses", fiber.Map{"Passes": passes, "Now": s.o.Now()})
}
