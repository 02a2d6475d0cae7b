// Command api serves passbatch's JSON API, pages, /healthz, /readyz and
// /metrics on HTTP_ADDR. It is stateless: run several behind a load
// balancer. On SIGTERM /readyz turns 503 and in-flight requests finish
// within SHUTDOWN_TIMEOUT.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/process"
	"github.com/passbatch/passbatch/web"
)

func main() {
	process.Main("api", config.Need{Redis: true, Web: true, Storage: true}, func(cfg config.Config, log *slog.Logger) process.Program {
		return &Main{Config: cfg, Logger: log}
	})
}

// Main is the api program.
type Main struct {
	Config config.Config
	Logger *slog.Logger

	sys      *process.System
	metrics  *process.MetricsServer
	app      *fiber.App
	draining atomic.Bool
	wg       sync.WaitGroup
}

// Run opens the system and starts serving HTTP_ADDR.
func (m *Main) Run(ctx context.Context) error {
	sys, err := process.Open(ctx, m.Config, m.Logger, "passbatch-api")
	if err != nil {
		return err
	}
	m.sys = sys
	sys.Metrics.MustRegister(process.RepositoryCollectors(sys.DB, sys.Inspector)...)
	w := m.Config.Web
	m.app = web.New(web.Options{
		DB: sys.DB, Logger: m.Logger, Metrics: sys.Metrics, MetricsToken: w.MetricsToken, PingRedis: sys.PingRedis,
		Engine: sys.Engine, Client: sys.Client, Redis: sys.Redis, RedisClient: sys.RedisClient, Store: sys.Store,
		AdminToken: m.Config.AdminToken, SessionSecret: m.Config.SessionSecret,
		CookieSecure: w.CookieSecure, TrustedProxies: w.TrustedProxies, AsynqmonWritable: !w.AsynqmonReadOnly,
		Draining: &m.draining, FailoverAfter: m.Config.Fleet.FailoverAfter, BookingCancelCutoff: w.BookingCancelCutoff,
	})
	ln, err := net.Listen("tcp", m.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.Config.HTTPAddr, err)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.app.Listener(ln); err != nil {
			m.Logger.Error("http server", "err", err)
		}
	}()
	m.Logger.Info("api listening", "addr", ln.Addr().String())
	if m.Config.MetricsAddr != "" {
		m.metrics = process.ServeMetrics(m.Config.MetricsAddr, sys.Metrics, w.Pprof, m.Logger)
	} else if w.MetricsToken == "" {
		m.Logger.Warn("metrics are not served: set METRICS_ADDR (a private address) or METRICS_TOKEN (for /metrics on the public port)")
	}
	return nil
}

// Close turns /readyz to 503, lets in-flight requests finish within
// SHUTDOWN_TIMEOUT and closes the process.
func (m *Main) Close() error {
	m.draining.Store(true)
	var err error
	if m.app != nil {
		if serr := m.app.ShutdownWithTimeout(m.Config.Fleet.ShutdownTimeout); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
			err = fmt.Errorf("http server: %w", serr)
		}
	}
	if m.metrics != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if serr := m.metrics.Shutdown(ctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("metrics server: %w", serr))
		}
	}
	m.wg.Wait()
	if m.sys != nil {
		m.sys.Close()
	}
	return err
}
