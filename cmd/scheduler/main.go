// Command scheduler enqueues the jobs' cron launches and runs the
// reconciler of stalled executions. Several may run: a tick produces one
// execution whatever the number of schedulers.
//
// RECONCILE_EVERY (default 30s) and RECONCILE_STALE_AFTER (default 2m) tune
// the reconciler; SCHEDULE_<JOB> overrides a job's cron or turns it off.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/internal/service"
	"github.com/passbatch/passbatch/tasks"
)

func duration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		fmt.Fprintf(os.Stderr, "scheduler: config: %s: want a duration such as 30s\n", name)
		os.Exit(2)
	}
	return d
}

func main() {
	entries, err := tasks.ScheduleFromEnv(os.LookupEnv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "scheduler: config: %v\n", err)
		os.Exit(2)
	}
	every := duration("RECONCILE_EVERY", 30*time.Second)
	stale := duration("RECONCILE_STALE_AFTER", 2*time.Minute)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	service.Main(ctx, "scheduler", config.Need{Redis: true}, func(ctx context.Context, s *service.Service) error {
		return s.RunScheduler(ctx, entries, every, stale)
	})
}
