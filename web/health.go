package web

import (
	"context"
	"crypto/subtle"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (s *server) healthRoutes(app *fiber.App) {
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", s.readyz)
	// Only with a token of its own: the admin token never opens it. With
	// none, the metrics are served on METRICS_ADDR only (cmd/api).
	if s.o.Metrics != nil && s.o.MetricsToken != "" {
		app.Get("/metrics", s.metricsAuth, adaptor.HTTPHandler(promhttp.HandlerFor(s.o.Metrics, promhttp.HandlerOpts{})))
	}
}

// readyz pings Postgres and Redis; 503 names the dependency that failed,
// never where it lives (the error goes to the log).
func (s *server) readyz(c *fiber.Ctx) error {
	if s.o.Draining != nil && s.o.Draining.Load() {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "draining"})
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	checks := fiber.Map{"status": "ok"}
	status := fiber.StatusOK
	check := func(name string, ping func(context.Context) error) {
		checks[name] = "ok"
		if err := ping(ctx); err != nil {
			s.o.Logger.WarnContext(ctx, "readiness check failed", "dependency", name, "err", err)
			checks[name], checks["status"], status = "unavailable", "unavailable", fiber.StatusServiceUnavailable
		}
	}
	check("postgres", s.o.DB.PingContext)
	ping := s.o.PingRedis
	if ping == nil {
		ping = func(context.Context) error { return errNoRedis }
	}
	check("redis", ping)
	return c.Status(status).JSON(checks)
}

var errNoRedis = &APIError{Code: "internal", Message: "redis is not configured"}

// metricsAuth lets through the scraper: Authorization: Bearer METRICS_TOKEN.
func (s *server) metricsAuth(c *fiber.Ctx) error {
	tok, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.o.MetricsToken)) != 1 {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="metrics"`)
		return &APIError{Status: fiber.StatusUnauthorized, Code: "unauthenticated", Message: "send Authorization: Bearer <METRICS_TOKEN>"}
	}
	return c.Next()
}
