package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/passbatch/passbatch/models"
)

// sessionCookie is the signed session cookie's name.
const sessionCookie = "pb_session"

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

// identity is who a request is from.
type identity struct {
	UserID int64  // 0 for the admin token
	Name   string // for the nav
	Admin  bool
	Token  bool // authenticated by ADMIN_TOKEN
}

// signSession returns the cookie value for a user: "id.role.expiry.mac".
func (s *server) signSession(u *models.User, now time.Time) string {
	payload := fmt.Sprintf("%d.%s.%d", u.ID, u.Role, now.Add(sessionTTL).Unix())
	return payload + "." + s.mac(payload)
}

func (s *server) mac(payload string) string {
	m := hmac.New(sha256.New, []byte(s.o.SessionSecret))
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// readSession verifies a cookie value; it returns the user id and role.
func (s *server) readSession(v string, now time.Time) (int64, string, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return 0, "", false
	}
	payload, sig := v[:i], v[i+1:]
	if subtle.ConstantTimeCompare([]byte(sig), []byte(s.mac(payload))) != 1 {
		return 0, "", false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 {
		return 0, "", false
	}
	id, err1 := strconv.ParseInt(parts[0], 10, 64)
	exp, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || now.Unix() > exp {
		return 0, "", false
	}
	return id, parts[1], true
}

// authenticate finds the request's identity: the admin bearer token, or a
// valid session of an active user. It never fails the request itself.
func (s *server) authenticate(c *fiber.Ctx) error {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(tok), []byte(s.o.AdminToken)) == 1 {
			c.Locals("id", &identity{Admin: true, Token: true, Name: "admin token"})
			return c.Next()
		}
		c.Locals("badToken", true)
		return c.Next()
	}
	if v := c.Cookies(sessionCookie); v != "" {
		if id, _, ok := s.readSession(v, s.o.Now()); ok {
			var u models.User
			err := s.o.DB.NewSelect().Model(&u).Where("id = ? AND status = 'ACTIVE'", id).Scan(c.UserContext())
			if err == nil {
				c.Locals("id", &identity{UserID: u.ID, Name: u.Name, Admin: u.Role == models.RoleAdmin})
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
	}
	return c.Next()
}

func who(c *fiber.Ctx) *identity {
	id, _ := c.Locals("id").(*identity)
	return id
}

var (
	errUnauthenticated = &APIError{Status: fiber.StatusUnauthorized, Code: "unauthenticated", Message: "log in, or send Authorization: Bearer <admin token>"}
	errForbidden       = &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "not allowed"}
)

// requireUser lets authenticated requests through (401 otherwise).
func requireUser(c *fiber.Ctx) error {
	if who(c) == nil {
		return errUnauthenticated
	}
	return c.Next()
}

// requireAdmin lets admins through: 401 without credentials, 403 for others.
func requireAdmin(c *fiber.Ctx) error {
	id := who(c)
	if id == nil {
		return errUnauthenticated
	}
	if !id.Admin {
		return errForbidden
	}
	return c.Next()
}

// login checks an email and password; nil user means wrong credentials.
func (s *server) login(ctx context.Context, email, password string) (*models.User, error) {
	var u models.User
	err := s.o.DB.NewSelect().Model(&u).Where("lower(email) = lower(?) AND status = 'ACTIVE'", strings.TrimSpace(email)).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		// Spend the same time as a real check so emails cannot be probed.
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return nil, nil
	}
	return &u, nil
}

func (s *server) setSession(c *fiber.Ctx, u *models.User) {
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: s.signSession(u, s.o.Now()), Path: "/", HTTPOnly: true, SameSite: "Lax",
		Secure: c.Protocol() == "https", Expires: s.o.Now().Add(sessionTTL),
	})
}

func clearSession(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{Name: sessionCookie, Value: "", Path: "/", HTTPOnly: true, SameSite: "Lax", Expires: time.Unix(0, 0)})
}
