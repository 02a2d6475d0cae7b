package web

import (
	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
	"github.com/passbatch/passbatch/models"
)

func (s *server) packageRoutes(a fiber.Router) {
	a.Get("/packages", func(c *fiber.Ctx) error {
		p, err := pageOf(c)
		if err != nil {
			return err
		}
		out, err := s.gym.Packages(c.UserContext(), p)
		if err != nil {
			return err
		}
		return c.JSON(list(out, func(p models.Package) int64 { return p.ID }, p))
	})
	a.Post("/packages", func(c *fiber.Ctx) error {
		var req gym.PackageRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		p, err := s.gym.CreatePackage(c.UserContext(), req)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(p)
	})
}
