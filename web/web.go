// Package web is passbatch's HTTP front: the JSON API, the pages, the
// health checks and /metrics, on Fiber. Handlers pass c.UserContext() down,
// never the pooled *fiber.Ctx.
package web

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uptrace/bun"
)

// Options are what the web front needs.
type Options struct {
	DB      *bun.DB
	Logger  *slog.Logger
	Metrics *prometheus.Registry
	// PingRedis checks Redis for /readyz.
	PingRedis func(ctx context.Context) error
}

// New builds the Fiber app.
func New(o Options) *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:               "passbatch",
		DisableStartupMessage: true,
		BodyLimit:             1 << 20,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           60 * time.Second,
		ErrorHandler:          errorHandler(o.Logger),
	})
	app.Use(recover.New())
	app.Get("/healthz", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"status": "ok"})
	})
	app.Get("/readyz", readyz(o))
	if o.Metrics != nil {
		app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(o.Metrics, promhttp.HandlerOpts{})))
	}
	return app
}

// readyz pings Postgres and Redis; 503 names the failing part.
func readyz(o Options) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
		defer cancel()
		checks := fiber.Map{}
		ok := true
		if err := o.DB.PingContext(ctx); err != nil {
			checks["postgres"] = "error: " + err.Error()
			ok = false
		} else {
			checks["postgres"] = "ok"
		}
		if o.PingRedis == nil {
			checks["redis"] = "error: not configured"
			ok = false
		} else if err := o.PingRedis(ctx); err != nil {
			checks["redis"] = "error: " + err.Error()
			ok = false
		} else {
			checks["redis"] = "ok"
		}
		status := fiber.StatusOK
		checks["status"] = "ok"
		if !ok {
			status = fiber.StatusServiceUnavailable
			checks["status"] = "unavailable"
		}
		return c.Status(status).JSON(checks)
	}
}

// APIError is the JSON error body of DESIGN §6.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var ae *APIError
		var fe *fiber.Error
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &fe):
			ae = &APIError{Status: fe.Code, Code: codeFor(fe.Code), Message: fe.Message}
		default:
			log.ErrorContext(c.UserContext(), "request failed", "path", c.Path(), "err", err)
			ae = &APIError{Status: fiber.StatusInternalServerError, Code: "internal", Message: "internal error"}
		}
		return c.Status(ae.Status).JSON(fiber.Map{"error": ae})
	}
}

func codeFor(status int) string {
	switch status {
	case fiber.StatusBadRequest:
		return "bad_request"
	case fiber.StatusUnauthorized:
		return "unauthenticated"
	case fiber.StatusForbidden:
		return "forbidden"
	case fiber.StatusNotFound:
		return "not_found"
	case fiber.StatusMethodNotAllowed:
		return "method_not_allowed"
	case fiber.StatusConflict:
		return "conflict"
	case fiber.StatusRequestEntityTooLarge:
		return "too_large"
	case fiber.StatusUnprocessableEntity:
		return "invalid"
	case fiber.StatusTooManyRequests:
		return "rate_limited"
	}
	if status >= 500 {
		return "internal"
	}
	return "error"
}
