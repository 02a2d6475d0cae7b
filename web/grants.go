package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
	"github.com/passbatch/passbatch/models"
)

func (s *server) grantRoutes(a fiber.Router) {
	a.Get("/bulk-passes", func(c *fiber.Ctx) error {
		p, err := pageOf(c)
		if err != nil {
			return err
		}
		out, err := s.gym.BulkPasses(c.UserContext(), p)
		if err != nil {
			return err
		}
		return c.JSON(list(out, func(b gym.BulkPass) int64 { return b.ID }, p))
	})
	a.Post("/bulk-passes", func(c *fiber.Ctx) error {
		var req struct {
			PackageID   int64      `json:"package_id"`
			UserGroupID *int64     `json:"user_group_id"`
			Count       *int       `json:"count"`
			StartedAt   *time.Time `json:"started_at"`
			EndedAt     *time.Time `json:"ended_at"`
		}
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		if req.UserGroupID == nil {
			return invalid("user_group_id", "required")
		}
		// A bulk pass is granted at its start (default now).
		return s.apiGrant(c, gym.GrantRequest{UserGroupID: req.UserGroupID, PackageID: req.PackageID, Count: req.Count,
			StartedAt: req.StartedAt, EndedAt: req.EndedAt, At: req.StartedAt})
	})
	a.Post("/grants", func(c *fiber.Ctx) error {
		var req gym.GrantRequest
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		return s.apiGrant(c, req)
	})
}

// apiGrant grants with the request's Idempotency-Key, scoped by who asks
// and the route (not its spelling: /API/admin/grants/ is the same route).
func (s *server) apiGrant(c *fiber.Ctx, req gym.GrantRequest) error {
	idem, err := idempotencyOf(c)
	if err != nil {
		return err
	}
	g, replay, err := s.gym.Grant(c.UserContext(), req, idem)
	if err != nil {
		return err
	}
	if replay != nil {
		c.Set("Idempotent-Replayed", "true")
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Status(fiber.StatusAccepted).Send(replay)
	}
	return c.Status(fiber.StatusAccepted).JSON(g)
}

// idempotencyOf is the request's Idempotency-Key, scoped by who asks and
// the route (not its spelling: /API/admin/grants/ is the same route), with
// the hash of its body; nil without one.
func idempotencyOf(c *fiber.Ctx) (*gym.Idempotency, error) {
	key := strings.TrimSpace(c.Get("Idempotency-Key"))
	if key == "" {
		return nil, nil
	}
	if len(key) > 200 {
		return nil, invalid("Idempotency-Key", "at most 200 characters")
	}
	id := who(c)
	sum := sha256.Sum256(c.Body())
	return &gym.Idempotency{Key: key, RequestHash: hex.EncodeToString(sum[:]),
		Scope: fmt.Sprintf("%s %s user:%d token:%t", c.Method(), c.Route().Path, id.UserID, id.Token)}, nil
}

func (s *server) pageBulk(c *fiber.Ctx) error {
	ctx := c.UserContext()
	bulks, err := s.gym.BulkPasses(ctx, gym.Page{Limit: 50})
	if err != nil {
		return err
	}
	all, err := s.gym.Packages(ctx, gym.Page{Limit: 200})
	if err != nil {
		return err
	}
	var pkgs []models.Package // a retired package cannot be granted
	for _, p := range all {
		if p.RetiredAt == nil {
			pkgs = append(pkgs, p)
		}
	}
	groups, err := s.gym.GrantGroups(ctx)
	if err != nil {
		return err
	}
	return s.render(c, "bulk", "bulk", fiber.Map{
		"Bulks": bulks, "Packages": pkgs, "Groups": groups, "OK": c.Query("ok"), "Error": c.Query("error"),
		"DefaultAt": s.o.Now().In(models.Seoul).Add(2 * time.Minute).Format("2006-01-02T15:04"),
	})
}

// grantForm reads the bulk-grant form into a request.
func grantForm(c *fiber.Ctx) (gym.GrantRequest, error) {
	var req gym.GrantRequest
	pid, err := strconv.ParseInt(c.FormValue("package_id"), 10, 64)
	if err != nil {
		return req, &gym.FieldError{Field: "package_id", Message: "choose a package"}
	}
	req.PackageID = pid
	if g := c.FormValue("user_group_id"); g != "" {
		gid, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return req, &gym.FieldError{Field: "user_group_id", Message: "choose a group"}
		}
		req.UserGroupID = &gid
	}
	for _, f := range strings.FieldsFunc(c.FormValue("user_ids"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' }) {
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return req, &gym.FieldError{Field: "user_ids", Message: f + " is not a number"}
		}
		req.UserIDs = append(req.UserIDs, id)
	}
	if v := c.FormValue("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return req, &gym.FieldError{Field: "count", Message: "a number"}
		}
		req.Count = &n
	}
	if v := c.FormValue("at"); v != "" {
		t, err := time.ParseInLocation("2006-01-02T15:04", v, models.Seoul)
		if err != nil {
			return req, &gym.FieldError{Field: "at", Message: "use the picker"}
		}
		req.At, req.StartedAt = &t, &t
	}
	return req, nil
}

// pageBulkCreate grants from the form through the same service as the
// API: one transaction, then the enqueue.
func (s *server) pageBulkCreate(c *fiber.Ctx) error {
	req, err := grantForm(c)
	if err == nil {
		var g *gym.Grant
		if g, _, err = s.gym.Grant(c.UserContext(), req, nil); err == nil {
			return c.Redirect(fmt.Sprintf("/admin/bulk-passes?ok=%d", g.BulkPassID))
		}
	}
	return s.redirectError(c, "/admin/bulk-passes", err)
}
