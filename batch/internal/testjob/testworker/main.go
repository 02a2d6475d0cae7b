// Command testworker is a worker process serving the engine's test jobs, so
// tests can run several and SIGKILL one mid-job. It reads DATABASE_URL,
// REDIS_URL and WORKER_CONCURRENCY (default 4) and stops on SIGTERM/SIGINT.
package main

import (
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
	db, err := database.Open(ctx, os.Getenv("DATABASE_URL"), database.Options{})
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
	eng := batch.New(db, client, testjob.Registry(), batch.Options{Logger: log})
	concurrency := 4
	if n, err := strconv.Atoi(os.Getenv("WORKER_CONCURRENCY")); err == nil && n > 0 {
		concurrency = n
	}
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency: concurrency, Queues: batch.Queues(nil), LogLevel: asynq.WarnLevel,
		RetryDelayFunc:    func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond },
		ShutdownTimeout:   5 * time.Second,
		TaskCheckInterval: 100 * time.Millisecond,
	})
	mux := asynq.NewServeMux()
	eng.Register(mux)
	if err := srv.Start(mux); err != nil {
		return err
	}
	<-ctx.Done()
	srv.Shutdown()
	return nil
}
