// Package web is passbatch's HTTP front: the JSON API, the pages, the
// health checks and /metrics, on Fiber. Handlers translate requests to the
// gym service and its answers back; they pass c.UserContext() down, never
// the pooled *fiber.Ctx. Nothing a request needs lives in one process's
// memory (see csrf.go, limit.go, auth.go), so any number of replicas serve
// behind a load balancer.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/template/html/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"golang.org/x/crypto/bcrypt"

	"github.com/passbatch/passbatch/gym"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/views"
)

// Options are what the web front needs. Zero values take the defaults noted.
type Options struct {
	DB     *bun.DB
	Logger *slog.Logger
	// Metrics is served on /metrics to requests bearing MetricsToken
	// (default AdminToken).
	Metrics      *prometheus.Registry
	MetricsToken string
	// PingRedis checks Redis for /readyz.
	PingRedis func(ctx context.Context) error
	// Engine launches and steers jobs; Client enqueues grant tasks; Redis
	// is the connection asynqmon inspects; RedisClient keeps the login
	// limits (default: one made from Redis).
	Engine      *gym.Engine
	Client      *asynq.Client
	Redis       asynq.RedisConnOpt
	RedisClient redis.UniversalClient
	Store       storage.Store
	// AdminToken and SessionSecret authenticate admins and sign sessions
	// and CSRF tokens; every replica must share them.
	AdminToken, SessionSecret string
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// LoginLimit is the failed logins allowed a minute per client address
	// and email (default 10); LoginLimitPerIP per address alone (default 50).
	LoginLimit, LoginLimitPerIP int
	// CookieSecure marks cookies Secure with __Host- names and sends HSTS;
	// set it whenever users reach the site over HTTPS (COOKIE_SECURE).
	CookieSecure bool
	// TrustedProxies are the addresses whose X-Forwarded-For is believed
	// for the client's address (TRUSTED_PROXIES). Default none.
	TrustedProxies []netip.Prefix
	// AsynqmonWritable lets admins change tasks and queues from
	// /admin/monitoring (ASYNQMON_READONLY=false). Default read-only.
	AsynqmonWritable bool
	// FailoverAfter is how recent a worker's heartbeat must be for a
	// recover to count it alive (FAILOVER_AFTER). Default 5s.
	FailoverAfter time.Duration
	// BookingCancelCutoff is how long before a class its booking can be
	// cancelled (BOOKING_CANCEL_CUTOFF, default 1h there). Zero: until it
	// starts.
	BookingCancelCutoff time.Duration
	// Draining, once true, makes /readyz answer 503 so a load balancer
	// stops sending requests while the server drains. Nil: never.
	Draining *atomic.Bool
}

type server struct {
	o         Options
	gym       *gym.Service
	dummyHash []byte
	limiter   *loginLimiter
	cookies   cookieNames
	// warnNoProxies says once that forwarded requests arrive while
	// TRUSTED_PROXIES is empty.
	warnNoProxies sync.Once
}

// New builds the Fiber app.
func New(o Options) *fiber.App {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}

	if o.RedisClient == nil && o.Redis != nil {
		o.RedisClient, _ = o.Redis.MakeRedisClient().(redis.UniversalClient)
	}
	s := &server{o: o, cookies: cookieNamesFor(o.CookieSecure),
		gym:     &gym.Service{DB: o.DB, Client: o.Client, Engine: o.Engine, Store: o.Store, Logger: o.Logger, Now: o.Now, LiveFor: o.FailoverAfter},
		limiter: newLoginLimiter(o.RedisClient, o.LoginLimit, o.LoginLimitPerIP, o.Logger)}
	s.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password"), 10)
	engine := html.NewFileSystem(http.FS(views.Files), ".html")
	engine.AddFuncMap(templateFuncs)
	app := fiber.New(fiber.Config{
		AppName:               "passbatch",
		DisableStartupMessage: true,
		BodyLimit:             1 << 20,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          10 * time.Minute, // a large download on a slow link
		IdleTimeout:           60 * time.Second,
		ErrorHandler:          errorHandler(o.Logger),
		Views:                 engine,
	})
	app.Use(recover.New(), s.securityHeaders, refuseNUL)
	s.healthRoutes(app)
	app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(views.Files), PathPrefix: "static", MaxAge: 3600}))
	app.Use(s.authenticate)
	api := app.Group("/api", s.apiGuard)
	s.apiRoutes(api)
	api.Use(func(c *fiber.Ctx) error { return notFound("route") })
	s.pageRoutes(app)
	return app
}

// apiRoutes registers the JSON API, one resource at a time.
func (s *server) apiRoutes(r fiber.Router) {
	r.Post("/login", s.apiLogin)
	r.Post("/logout", s.apiLogout)
	s.passRoutes(r)
	s.meRoutes(r)
	s.classRoutes(r)
	a := r.Group("/admin", requireAdmin)
	s.packageRoutes(a)
	s.memberRoutes(a)
	s.grantRoutes(a)
	s.statisticsRoutes(a)
	s.jobRoutes(a)
	s.exportRoutes(a)
	s.adminClassRoutes(a)
}
