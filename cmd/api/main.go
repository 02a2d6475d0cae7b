// Command api serves passbatch's JSON API, pages, /healthz, /readyz and
// /metrics on HTTP_ADDR. It is stateless: run several behind a load balancer.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/internal/service"
	"github.com/passbatch/passbatch/tasks"
	"github.com/passbatch/passbatch/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	service.Main(ctx, "api", config.Need{Redis: true, Web: true}, func(ctx context.Context, s *service.Service) error {
		s.Metrics.MustRegister(batch.NewExecutionsCollector(s.DB))
		schedule, err := tasks.ScheduleFromEnv(os.LookupEnv)
		if err != nil {
			return err
		}
		app := web.New(web.Options{
			DB: s.DB, Logger: s.Logger, Metrics: s.Metrics, PingRedis: s.PingRedis,
			Engine: s.Engine, Client: s.Client, Redis: s.Redis, Store: s.Store,
			AdminToken: s.Config.AdminToken, SessionSecret: s.Config.SessionSecret, Schedule: schedule,
		})
		errc := make(chan error, 1)
		go func() { errc <- app.Listen(s.Config.HTTPAddr) }()
		s.Logger.Info("api listening", "addr", s.Config.HTTPAddr)
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			return app.ShutdownWithTimeout(10 * time.Second)
		}
	})
}
