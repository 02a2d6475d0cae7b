package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"

	"github.com/gofiber/fiber/v2"
)

// CSRF tokens are stateless: a form's token is the HMAC, under
// SESSION_SECRET, of what binds the browser — its session cookie, or before
// login a random pre-session cookie. Any replica can check it, nothing is
// stored, and a token minted for one session is worth nothing in another.
// Only pages with forms mint one (and only the login page sets the
// pre-session cookie).

const preSessionTTL = 12 * time.Hour

// cookieNames are the cookies' names: with COOKIE_SECURE, __Host- names
// the browser keeps to this exact host, over HTTPS, for the whole site.
type cookieNames struct{ session, preSession string }

func cookieNamesFor(secure bool) cookieNames {
	if secure {
		return cookieNames{session: "__Host-pb_session", preSession: "__Host-pb_pre"}
	}
	return cookieNames{session: "pb_session", preSession: "pb_pre"}
}

// csrfBinding is what the request's token is bound to, or "".
func (s *server) csrfBinding(c *fiber.Ctx) string {
	if v := c.Cookies(s.cookies.session); v != "" && who(c) != nil {
		return "session:" + v
	}
	if v := c.Cookies(s.cookies.preSession); v != "" {
		return "pre:" + v
	}
	return ""
}

func (s *server) csrfFor(binding string) string {
	m := hmac.New(sha256.New, []byte(s.o.SessionSecret))
	m.Write([]byte("csrf\x00" + binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfToken mints the token for a page's forms, setting the pre-session
// cookie first when the browser has neither it nor a session.
func (s *server) csrfToken(c *fiber.Ctx) string {
	b := s.csrfBinding(c)
	if b == "" {
		nonce := make([]byte, 18)
		_, _ = rand.Read(nonce)
		v := base64.RawURLEncoding.EncodeToString(nonce)
		c.Cookie(s.cookie(s.cookies.preSession, v, s.o.Now().Add(preSessionTTL)))
		b = "pre:" + v
	}
	return s.csrfFor(b)
}

// validCSRF checks a token against the request's binding.
func (s *server) validCSRF(c *fiber.Ctx, token string) bool {
	b := s.csrfBinding(c)
	return b != "" && hmac.Equal([]byte(token), []byte(s.csrfFor(b)))
}

// csrfGuard refuses an unsafe page request (a form post) without the
// form's token.
func (s *server) csrfGuard(c *fiber.Ctx) error {
	if !unsafe(c.Method()) {
		return c.Next()
	}
	t := c.FormValue("_csrf")
	if t == "" {
		t = c.Get("X-CSRF-Token")
	}
	if !s.validCSRF(c, t) {
		return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "the form expired; reload the page"}
	}
	return c.Next()
}

// cookie is one of our cookies: HttpOnly, SameSite=Lax, the whole site,
// Secure per COOKIE_SECURE (never per a client-sent header).
func (s *server) cookie(name, value string, expires time.Time) *fiber.Cookie {
	return &fiber.Cookie{Name: name, Value: value, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: s.o.CookieSecure, Expires: expires}
}
