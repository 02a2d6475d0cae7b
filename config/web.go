package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Settings of the api: its address, secrets and security settings.

// Web is how the api is published.
type Web struct {
	// MetricsToken is the bearer token the api's public /metrics wants
	// (METRICS_TOKEN; never ADMIN_TOKEN). Empty: /metrics is not served on
	// the public port, only on METRICS_ADDR.
	MetricsToken string
	// CookieSecure marks cookies Secure with __Host- names and sends HSTS.
	// Default true (COOKIE_SECURE); make dev sets false for plain HTTP.
	CookieSecure bool
	// TrustedProxies are the load balancers whose X-Forwarded-For is
	// believed (TRUSTED_PROXIES: comma-separated addresses or CIDRs).
	// Default none: the connection's peer is the client.
	TrustedProxies []netip.Prefix
	// AsynqmonReadOnly keeps /admin/monitoring from changing tasks and
	// queues. Default true (ASYNQMON_READONLY).
	AsynqmonReadOnly bool
	// Pprof says when a worker serves /debug/pprof on METRICS_ADDR:
	// "loopback" (default: only when METRICS_ADDR is a loopback address),
	// "on" or "off" (PPROF).
	Pprof string
	// BookingCancelCutoff is how long before a class a member can still
	// cancel a booking (BOOKING_CANCEL_CUTOFF). Default 1h.
	BookingCancelCutoff time.Duration
}

// publishedSecrets are pieces of the example secrets in this repository's
// docs, compose file and Makefiles: a server with one of them is open to
// anyone who read them.
var publishedSecrets = []string{"change-me", "changeme", "dev-admin-token", "dev-session-secret", "example", "replace-me"}

// published reports whether a secret is (made from) a published example.
func published(secret string) bool {
	l := strings.ToLower(secret)
	for _, p := range publishedSecrets {
		if strings.Contains(l, p) {
			return true
		}
	}
	return false
}

// loadAddrs checks HTTP_ADDR (default :8080) and METRICS_ADDR.
func loadAddrs(c *Config, get func(string) string, need Need) error {
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return &Error{"HTTP_ADDR", "want host:port or :port, e.g. :8080"}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return &Error{"METRICS_ADDR", "want host:port or :port, e.g. 127.0.0.1:9101"}
		}
	}
	return nil
}

// loadSecrets checks the api's token and secret (need.Web).
func loadSecrets(c *Config, get func(string) string, need Need) error {
	if need.Web {
		if c.AdminToken == "" {
			return &Error{"ADMIN_TOKEN", "required: the bearer token admins use"}
		}
		if len(c.AdminToken) < 12 {
			return &Error{"ADMIN_TOKEN", "too short: use at least 12 characters"}
		}
		if len(c.SessionSecret) < 32 {
			return &Error{"SESSION_SECRET", "required: at least 32 random characters"}
		}
		if published(c.AdminToken) {
			return &Error{"ADMIN_TOKEN", "is an example from the docs; use a random one (openssl rand -hex 24)"}
		}
		if published(c.SessionSecret) {
			return &Error{"SESSION_SECRET", "is an example from the docs; use a random one (openssl rand -hex 32)"}
		}
	}
	return nil
}

// loadWeb reads the api's security settings.
func loadWeb(get func(string) string, c Config) (Web, error) {
	w := Web{MetricsToken: get("METRICS_TOKEN"), CookieSecure: true, AsynqmonReadOnly: true, Pprof: "loopback"}
	switch {
	case w.MetricsToken == "":
	case len(w.MetricsToken) < 12 || published(w.MetricsToken):
		return w, &Error{"METRICS_TOKEN", "want at least 12 random characters"}
	case w.MetricsToken == c.AdminToken:
		return w, &Error{"METRICS_TOKEN", "want a token of its own, not ADMIN_TOKEN: a scraper must not hold the admin's keys"}
	}
	for _, b := range []struct {
		name string
		into *bool
	}{{"COOKIE_SECURE", &w.CookieSecure}, {"ASYNQMON_READONLY", &w.AsynqmonReadOnly}} {
		if v := get(b.name); v != "" {
			t, err := strconv.ParseBool(v)
			if err != nil {
				return w, &Error{b.name, "want true or false"}
			}
			*b.into = t
		}
	}
	for _, f := range strings.Split(get("TRUSTED_PROXIES"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return w, &Error{"TRUSTED_PROXIES", "want addresses or CIDRs, comma-separated, e.g. 10.0.0.0/8"}
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		w.TrustedProxies = append(w.TrustedProxies, p)
	}
	switch v := get("PPROF"); v {
	case "":
	case "loopback", "on", "off":
		w.Pprof = v
	default:
		return w, &Error{"PPROF", "want loopback, on or off"}
	}
	w.BookingCancelCutoff = time.Hour
	if v := get("BOOKING_CANCEL_CUTOFF"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 7*24*time.Hour {
			return w, &Error{"BOOKING_CANCEL_CUTOFF", "want a duration from 0s to 168h, e.g. 1h"}
		}
		w.BookingCancelCutoff = d
	}
	return w, nil
}
