// Command testworker is a worker process serving the engine's test jobs, so
// tests can run several and SIGKILL one mid-job. It reads DATABASE_URL,
// REDIS_URL, WORKER_CONCURRENCY (default 4) and WORKER_ID (default a new
// one; also its database sessions' application_name) and drains on
// SIGTERM/SIGINT. With OTEL_EXPORTER_OTLP_ENDPOINT it sends its traces.
package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/internal/tracing"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "testworker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	if tracing.Enabled(os.LookupEnv) {
		stop, err := tracing.Setup(ctx, "testworker")
		if err != nil {
			return err
		}
		defer stop(context.WithoutCancel(ctx))
	}
	// As cmd/worker: a frozen worker's transaction ends after 2s idle.
	id := cmp.Or(os.Getenv("WORKER_ID"), batch.NewWorkerID())
	db, err := database.Open(ctx, os.Getenv("DATABASE_URL"), database.Options{ApplicationName: id,
		Session: database.SessionLimits{IdleInTransaction: 2 * time.Second, Lock: 10 * time.Second, Statement: time.Minute}})
	if err != nil {
		return err
	}
	defer db.Close()
	opt, err := asynq.ParseRedisURI(os.Getenv("REDIS_URL"))
	if err != nil {
		return err
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng := batch.New(db, client, testjob.Registry(db), batch.Options{Logger: log})
	concurrency := 4
	if n, err := strconv.Atoi(os.Getenv("WORKER_CONCURRENCY")); err == nil && n > 0 {
		concurrency = n
	}
	w := eng.NewWorker(opt, batch.WorkerOptions{ID: id,
		Concurrency: concurrency, Logger: log, ShutdownTimeout: 10 * time.Second,
		RetryDelay:        func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond },
		TaskCheckInterval: 100 * time.Millisecond,
	})
	if err := w.Start(ctx, nil); err != nil {
		return err
	}
	<-ctx.Done()
	w.Stop(context.WithoutCancel(ctx))
	return nil
}
