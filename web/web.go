// Package web is passbatch's HTTP front: the JSON API, the pages, the
// health checks and /metrics, on Fiber. Handlers pass c.UserContext() down,
// never the pooled *fiber.Ctx.
package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/limiter"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/template/html/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uptrace/bun"
	"golang.org/x/crypto/bcrypt"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
	"github.com/passbatch/passbatch/views"
)

// Options are what the web front needs.
type Options struct {
	DB      *bun.DB
	Logger  *slog.Logger
	Metrics *prometheus.Registry
	// PingRedis checks Redis for /readyz.
	PingRedis func(ctx context.Context) error
	// Engine launches and steers jobs; Client enqueues grant tasks; Redis
	// is the connection asynqmon inspects.
	Engine *batch.Engine
	Client *asynq.Client
	Redis  asynq.RedisConnOpt
	Store  storage.Store
	// AdminToken and SessionSecret authenticate admins and sign sessions.
	AdminToken, SessionSecret string
	// Schedule is the cron table, shown with the jobs.
	Schedule []tasks.Entry
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// LoginLimit is the failed logins allowed per client IP a minute. Default 10.
	LoginLimit int
	// Draining, once true, makes /readyz answer 503 so a load balancer
	// stops sending requests while the server drains. Nil: never.
	Draining *atomic.Bool
}

type server struct {
	o         Options
	dummyHash []byte
}

// New builds the Fiber app.
func New(o Options) *fiber.App {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LoginLimit == 0 {
		o.LoginLimit = 10
	}
	s := &server{o: o}
	s.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password"), 10)
	engine := html.NewFileSystem(http.FS(views.Files), ".html")
	engine.AddFuncMap(templateFuncs)
	app := fiber.New(fiber.Config{
		AppName:               "passbatch",
		DisableStartupMessage: true,
		BodyLimit:             1 << 20,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           60 * time.Second,
		ErrorHandler:          errorHandler(o.Logger),
		Views:                 engine,
	})
	app.Use(recover.New())
	app.Get("/healthz", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"status": "ok"})
	})
	app.Get("/readyz", readyz(o))
	if o.Metrics != nil {
		app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(o.Metrics, promhttp.HandlerOpts{})))
	}
	app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(views.Files), PathPrefix: "static", MaxAge: 3600}))
	app.Use(s.authenticate)
	loginLimit := limiter.New(limiter.Config{
		Max: o.LoginLimit, Expiration: time.Minute, SkipSuccessfulRequests: true,
		LimitReached: func(c *fiber.Ctx) error {
			return &APIError{Status: fiber.StatusTooManyRequests, Code: "rate_limited", Message: "too many failed logins; wait a minute"}
		},
	})
	app.Post("/api/login", loginLimit)
	app.Post("/login", loginLimit)
	api := app.Group("/api", func(c *fiber.Ctx) error {
		if bad, _ := c.Locals("badToken").(bool); bad {
			return &APIError{Status: fiber.StatusUnauthorized, Code: "unauthenticated", Message: "invalid bearer token"}
		}
		return c.Next()
	})
	s.apiRoutes(api)
	api.Use(func(c *fiber.Ctx) error { return notFound("route") })
	s.pageRoutes(app)
	return app
}

// readyz pings Postgres and Redis; 503 names the failing part.
func readyz(o Options) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if o.Draining != nil && o.Draining.Load() {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "draining"})
		}
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
