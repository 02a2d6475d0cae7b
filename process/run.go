package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/passbatch/passbatch/config"
)

// Program is a process's main type, in the shape of wtf's Main: Run starts
// everything and returns once it runs; Close drains and stops what Run
// started, joins every goroutine it started and closes the connections,
// within the config's ShutdownTimeout.
type Program interface {
	Run(ctx context.Context) error
	Close() error
}

// Main loads the config, builds the program with it, runs it until SIGINT
// or SIGTERM and then closes it. A configuration mistake prints one line
// and exits 2; a failure to start or to close cleanly exits 1.
func Main(name string, need config.Need, build func(cfg config.Config, log *slog.Logger) Program) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := config.FromEnv(need)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	log := cfg.Logger().With("process", name)
	p := build(cfg, log)
	if err := p.Run(ctx); err != nil {
		log.Error("start failed", "err", err)
		_ = p.Close()
		os.Exit(1)
	}
	<-ctx.Done()
	stop() // a second signal kills the process at once
	log.Info("signal received: draining", "shutdown_timeout", cfg.Fleet.ShutdownTimeout)
	if err := p.Close(); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped with an error", "err", err)
		os.Exit(1)
	}
	log.Info("stopped")
}
