package web

import (
	"mime"
	"net/netip"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// The content security policy of every page: only our own scripts and
// styles (none inline), never in a frame.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; " +
	"base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// asynqmon's single-page app sets its settings in an inline script, so its
// pages allow inline script and style; they stay unframeable.
const monitoringCSP = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"

// securityHeaders sets the headers every answer carries.
func (s *server) securityHeaders(c *fiber.Ctx) error {
	policy := csp
	if strings.HasPrefix(c.Path(), "/admin/monitoring") {
		policy = monitoringCSP
	}
	h := &c.Response().Header
	h.Set("Content-Security-Policy", policy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if s.o.CookieSecure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	// Pages, API answers and downloads may be someone's own data: no cache
	// keeps them. Only the static assets are cacheable.
	if !strings.HasPrefix(c.Path(), "/static/") {
		h.Set(fiber.HeaderCacheControl, "no-store")
	}
	return c.Next()
}

// clientIP is the address of the client: the connection's peer, or, when
// the peer is a trusted proxy, the right-most address in X-Forwarded-For
// that is not one (addresses left of it are the client's to invent).
func (s *server) clientIP(c *fiber.Ctx) string {
	peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return c.Context().RemoteIP().String()
	}
	peer = peer.Unmap()
	if !s.trusted(peer) {
		if len(s.o.TrustedProxies) == 0 && len(c.Request().Header.Peek(fiber.HeaderXForwardedFor)) > 0 {
			s.warnNoProxies.Do(func() {
				s.o.Logger.Warn("requests come with X-Forwarded-For but TRUSTED_PROXIES is empty: every client behind the proxy counts as the proxy's address (login limits); set TRUSTED_PROXIES to the proxy's addresses")
			})
		}
		return peer.String()
	}
	// Every header line, in order: a proxy may append a line of its own
	// rather than extend the client's.
	var hops []string
	for _, line := range c.Request().Header.PeekAll(fiber.HeaderXForwardedFor) {
		hops = append(hops, strings.Split(string(line), ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if a = a.Unmap(); !s.trusted(a) {
			return a.String()
		}
	}
	return peer.String()
}

func (s *server) trusted(a netip.Addr) bool {
	for _, p := range s.o.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// unsafe reports whether a method changes state.
func unsafe(method string) bool {
	return method != fiber.MethodGet && method != fiber.MethodHead && method != fiber.MethodOptions
}

// sameOrigin reports whether a request comes from our own pages: its
// Origin is this host, or the browser says so (Sec-Fetch-Site), or it
// carries the session's CSRF token in X-CSRF-Token. A request without any
// of them is a browser's only if it carries our session cookie; a script
// without cookies (curl logging in) passes.
func (s *server) sameOrigin(c *fiber.Ctx) bool {
	if t := c.Get("X-CSRF-Token"); t != "" {
		return s.validCSRF(c, t)
	}
	if o := c.Get(fiber.HeaderOrigin); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host != "" && strings.EqualFold(u.Host, string(c.Request().Host()))
	}
	switch c.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
		return c.Cookies(s.cookies.session) == ""
	}
	return false
}

// apiGuard refuses a bad bearer token, and an unsafe request authenticated
// by cookie that is not JSON (415) or not from our origin (403): a form or
// a text/plain fetch from another site cannot act with a user's cookie.
// Bearer-token requests are not a browser's and pass.
func (s *server) apiGuard(c *fiber.Ctx) error {
	if bad, _ := c.Locals("badToken").(bool); bad {
		return &APIError{Status: fiber.StatusUnauthorized, Code: "unauthenticated", Message: "invalid bearer token"}
	}
	if !unsafe(c.Method()) {
		return c.Next()
	}
	if id := who(c); id != nil && id.Token {
		return c.Next()
	}
	if mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType)); err != nil || mt != fiber.MIMEApplicationJSON {
		return &APIError{Status: fiber.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "send Content-Type: application/json"}
	}
	if !s.sameOrigin(c) {
		return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "cross-site request refused"}
	}
	return c.Next()
}

// originGuard refuses unsafe requests from other sites (asynqmon's API).
func (s *server) originGuard(c *fiber.Ctx) error {
	if unsafe(c.Method()) && !s.sameOrigin(c) {
		return &APIError{Status: fiber.StatusForbidden, Code: "forbidden", Message: "cross-site request refused"}
	}
	return c.Next()
}
