// Command worker runs the batch engine's task handlers on asynq. Run as
// many replicas as you like, on any machine; each serves /metrics on
// METRICS_ADDR when set.
package main

import (
	"context"
	"os/signal"
	"syscall"

	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/internal/service"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	service.Main(ctx, "worker", config.Need{Redis: true}, func(ctx context.Context, s *service.Service) error {
		return s.RunWorker(ctx)
	})
}
