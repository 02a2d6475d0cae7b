package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/passbatch/passbatch/benchmark"
	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/internal/database"
)

// parseWorkers reads --workers: worker-process counts, 1 to 64 each.
func parseWorkers(v string) ([]int, error) {
	var ws []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return nil, usageErr("bench: --workers wants numbers 1 to 64, e.g. 1,2,4")
		}
		ws = append(ws, n)
	}
	return ws, nil
}

// parseScenarios reads --only: known scenario names; empty is all.
func parseScenarios(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !slices.Contains(benchmark.Scenarios, f) {
			return nil, usageErr("bench: --only: unknown scenario %q (known: %s)", f, strings.Join(benchmark.Scenarios, ", "))
		}
		out = append(out, f)
	}
	return out, nil
}

// apiBinary is --api-bin made absolute, "" when empty (no api load).
func apiBinary(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	if _, err := os.Stat(path); err != nil {
		return "", usageErr("bench: %s not found; run `make build` first (or pass --api-bin)", path)
	}
	return filepath.Abs(path)
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "naive-worker" {
		return naiveWorker(ctx)
	}
	fs := newFlags("bench", stderr)
	users := fs.Int("users", 100_000, "users in the data set")
	bookings := fs.Int("bookings", 1_000_000, "bookings in the data set")
	workers := fs.String("workers", "1,2,4", "worker-process counts to measure")
	out := fs.String("out", "bench/results.md", "where to write the results (markdown)")
	workerBin := fs.String("worker-bin", "bin/worker", "the cmd/worker binary")
	apiBin := fs.String("api-bin", "bin/api", "the cmd/api binary (empty: skip the api load)")
	sample := fs.Int("naive-sample", 20_000, "items for each one-task-per-item run")
	notices := fs.Int("notices", 100_000, "classes starting in one minute for notify-before-class")
	apiSeconds := fs.Float64("api-seconds", 8, "seconds each api route is loaded under each generator")
	apiExecutions := fs.Int("api-executions", 100_000, "job executions in the repository while the admin pages are loaded")
	only := fs.String("only", "", "comma-separated scenarios to run ("+strings.Join(benchmark.Scenarios, ", ")+"); empty runs all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ws, err := parseWorkers(*workers)
	if err != nil {
		return err
	}
	scenarios, err := parseScenarios(*only)
	if err != nil {
		return err
	}
	if *users < 1 || *bookings < 0 || *sample < 1 || *notices < 1 || *apiSeconds <= 0 || *apiExecutions < 1 {
		return usageErr("bench: sizes must be positive")
	}
	if _, err := os.Stat(*workerBin); err != nil {
		return usageErr("bench: %s not found; run `make build` first (or pass --worker-bin)", *workerBin)
	}
	cfg, err := config.FromEnv(config.Need{Redis: true})
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	wb, _ := filepath.Abs(*workerBin)
	ab, err := apiBinary(*apiBin)
	if err != nil {
		return err
	}
	rep, err := benchmark.Run(ctx, benchmark.Options{
		DatabaseURL: cfg.DatabaseURL, RedisURL: cfg.RedisURL, Users: *users, Bookings: *bookings, Workers: ws,
		WorkerBin: wb, APIBin: ab, SelfBin: self, NaiveSample: *sample, Notices: *notices, APISeconds: *apiSeconds, APIExecutions: *apiExecutions, Progress: stderr, Only: scenarios,
	})
	if err != nil {
		return err
	}
	cmd := "make bench"
	if len(args) > 0 {
		cmd += " BENCH_ARGS='" + strings.Join(args, " ") + "'"
	}
	return writeBenchReport(rep, cmd, *out, stdout, stderr)
}

// writeBenchReport prints the report and writes it to out (when set).
func writeBenchReport(rep *benchmark.Report, cmd, out string, stdout, stderr io.Writer) error {
	if err := benchmark.WriteMarkdown(stdout, rep, cmd); err != nil {
		return err
	}
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := benchmark.WriteMarkdown(f, rep, cmd); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: wrote %s\n", out)
	return nil
}

// naiveWorker serves the one-task-per-item design the bench compares with.
func naiveWorker(ctx context.Context) error {
	cfg, err := config.FromEnv(config.Need{Redis: true})
	if err != nil {
		return err
	}
	db, err := database.Open(ctx, cfg.DatabaseURL, database.Options{MaxOpenConns: cfg.WorkerConcurrency + 2})
	if err != nil {
		return err
	}
	defer db.Close()
	opt, err := asynq.ParseRedisURI(cfg.RedisURL)
	if err != nil {
		return err
	}
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: cfg.WorkerConcurrency, Queues: map[string]int{"bench-naive": 1},
		LogLevel: asynq.WarnLevel, TaskCheckInterval: 50 * time.Millisecond})
	if err := srv.Start(benchmark.NaiveMux(db)); err != nil {
		return err
	}
	<-ctx.Done()
	srv.Shutdown()
	return nil
}
