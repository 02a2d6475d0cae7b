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

	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/models"
)

// Sessions: a signed cookie "id.epoch.expiry.mac". The epoch is the user's
// session_epoch when the cookie was made; logout bumps it (so do password,
// role and status changes, by a trigger), which ends every session of the
// user on every replica, copies of the cookie included.

// sessionTTL is how long a login lasts.
const sessionTTL = 12 * time.Hour

// identity is who a request is from.
type identity struct {
	UserID int64  // 0 for the admin token
	Name   string // for the nav
	Admin  bool
	Token  bool // authenticated by ADMIN_TOKEN
}

func (s *server) signSession(u *models.User, now time.Time) string {
	payload := fmt.Sprintf("%d.%d.%d", u.ID, u.SessionEpoch, now.Add(sessionTTL).Unix())
	return payload + "." + s.mac("session\x00"+payload)
}

func (s *server) mac(payload string) string {
	m := hmac.New(sha256.New, []byte(s.o.SessionSecret))
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// readSession verifies a cookie value; it returns the user id and epoch.
func (s *server) readSession(v string, now time.Time) (id int64, epoch int, ok bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return 0, 0, false
	}
	payload, sig := v[:i], v[i+1:]
	if subtle.ConstantTimeCompare([]byte(sig), []byte(s.mac("session\x00"+payload))) != 1 {
		return 0, 0, false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 {
		return 0, 0, false
	}
	id, err1 := strconv.ParseInt(parts[0], 10, 64)
	epoch, err2 := strconv.Atoi(parts[1])
	exp, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || now.Unix() > exp {
		return 0, 0, false
	}
	return id, epoch, true
}

// claim is a session cookie whose signature and expiry hold. Whether its
// user is still active at its epoch is asked of the database once, when
// who first needs it, or by the statement that also reads the page's
// data (the members' passes), so a request costs one round trip.
type claim struct {
	userID  int64
	epoch   int
	checked bool
	id      *identity // when checked: nil if the session is over
	err     error     // when checked: the database's failure, if any
}

// authenticate finds the request's identity: the admin bearer token, or
// the claim of a validly signed, unexpired session cookie (checked
// against the database later, see claim). It never fails the request.
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
	if v := c.Cookies(s.cookies.session); v != "" {
		if id, epoch, ok := s.readSession(v, s.o.Now()); ok {
			c.Locals("claim", &claim{userID: id, epoch: epoch})
			c.Locals("server", s)
		}
	}
	return c.Next()
}

// checkSession asks the database whether cl's user is active at its epoch.
func (s *server) checkSession(ctx context.Context, cl *claim) (*identity, error) {
	// Every authenticated request asks this: prepared once a connection.
	var us []models.User
	if err := database.QueryPrepared(ctx, s.o.DB, &us, `SELECT id, name, role FROM users WHERE id = $1 AND status = $2 AND session_epoch = $3`,
		cl.userID, models.UserActive, cl.epoch); err != nil {
		return nil, fmt.Errorf("check session: %w", err)
	}
	if len(us) == 0 {
		return nil, nil
	}
	return &identity{UserID: us[0].ID, Name: us[0].Name, Admin: us[0].Role == models.RoleAdmin}, nil
}

// claimOf is the request's unchecked session claim, or nil.
func claimOf(c *fiber.Ctx) *claim {
	cl, _ := c.Locals("claim").(*claim)
	if cl == nil || cl.checked {
		return nil
	}
	return cl
}

// settle records what the database said about the request's claim.
func settle(c *fiber.Ctx, cl *claim, id *identity, err error) {
	cl.checked, cl.id, cl.err = true, id, err
	if id != nil {
		c.Locals("id", id)
	}
}

// who is the request's identity, or nil; a session is checked against the
// database on the first call.
func who(c *fiber.Ctx) *identity {
	if id, ok := c.Locals("id").(*identity); ok {
		return id
	}
	if cl := claimOf(c); cl != nil {
		s := c.Locals("server").(*server)
		id, err := s.checkSession(c.UserContext(), cl)
		settle(c, cl, id, err)
		return id
	}
	return nil
}

// authError is why a request has no identity: the database's failure to
// check its session, or errUnauthenticated.
func authError(c *fiber.Ctx) error {
	if cl, _ := c.Locals("claim").(*claim); cl != nil && cl.err != nil {
		return cl.err
	}
	return errUnauthenticated
}

// requireUser lets authenticated requests through (401 otherwise).
func requireUser(c *fiber.Ctx) error {
	if who(c) == nil {
		return authError(c)
	}
	return c.Next()
}

// requireAdmin lets admins through: 401 without credentials, 403 for others.
func requireAdmin(c *fiber.Ctx) error {
	id := who(c)
	if id == nil {
		return authError(c)
	}
	if !id.Admin {
		return errForbidden
	}
	return c.Next()
}

// errLoginLimited is a login refused by the limits; Retry-After is set.
var errLoginLimited = &APIError{Status: fiber.StatusTooManyRequests, Code: "rate_limited", Message: "too many failed logins; try again later"}

// login checks an email and password under the login limits: a nil user
// (and nil error) means wrong credentials, errLoginLimited too many tries.
func (s *server) login(c *fiber.Ctx, email, password string) (*models.User, error) {
	ctx := c.UserContext()
	ip, email := s.clientIP(c), strings.TrimSpace(email)
	wait, refund := s.limiter.attempt(ctx, ip, email)
	if wait > 0 {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait.Seconds()+0.999)))
		return nil, errLoginLimited
	}
	u, err := s.checkPassword(ctx, email, password)
	if u != nil {
		refund()
	}
	return u, err
}

func (s *server) checkPassword(ctx context.Context, email, password string) (*models.User, error) {
	var u models.User
	err := s.o.DB.NewSelect().Model(&u).Where("lower(email) = lower(?) AND status = ?", email, models.UserActive).Scan(ctx)
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
	c.Cookie(s.cookie(s.cookies.session, s.signSession(u, s.o.Now()), s.o.Now().Add(sessionTTL)))
}

// logout ends every session of the request's user and clears the cookie.
func (s *server) logout(c *fiber.Ctx) error {
	if id := who(c); id != nil && id.UserID != 0 {
		if _, err := s.o.DB.NewUpdate().Model((*models.User)(nil)).Set("session_epoch = session_epoch + 1").
			Where("id = ?", id.UserID).Exec(c.UserContext()); err != nil {
			return fmt.Errorf("end sessions: %w", err)
		}
	}
	c.Cookie(s.cookie(s.cookies.session, "", time.Unix(0, 0)))
	return nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (s *server) apiLogin(c *fiber.Ctx) error {
	var req loginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Email == "" {
		return invalid("email", "required")
	}
	if req.Password == "" {
		return invalid("password", "required")
	}
	u, err := s.login(c, req.Email, req.Password)
	if err != nil {
		return err
	}
	if u == nil {
		return &APIError{Status: fiber.StatusUnauthorized, Code: "unauthenticated", Message: "wrong email or password"}
	}
	s.setSession(c, u)
	return c.JSON(fiber.Map{"id": u.ID, "name": u.Name, "email": u.Email, "role": u.Role})
}

func (s *server) apiLogout(c *fiber.Ctx) error {
	if err := s.logout(c); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"ok": true})
}
