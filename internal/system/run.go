package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/tasks"
)

// Main loads the config, opens the service and runs fn until ctx ends. A
// configuration mistake prints one line and exits 2; another failure exits 1.
func Main(ctx context.Context, name string, need config.Need, fn func(ctx context.Context, s *Service) error) {
	cfg, err := config.FromEnv(need)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
	log := cfg.Logger().With("process", name)
	s, err := Open(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		os.Exit(1)
	}
	defer s.Close()
	if err := fn(ctx, s); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped on error", "err", err)
		s.Close()
		os.Exit(1)
	}
	log.Info("stopped")
}

// catchUp launches each scheduled job for its latest tick, as a cron that
// fires once after downtime would (a missed tick is not lost). The instance
// of that tick may exist already — run by another scheduler, or before a
// restart — and is then refused, which is fine.
func (s *Service) catchUp(ctx context.Context, entries []tasks.Entry) {
	for _, e := range entries {
		tick, err := tasks.LastTick(e.Cron, time.Now())
		if err != nil {
			continue
		}
		p := batch.Params{batch.ParamRunAt: {Value: tick.Format(time.RFC3339), Identifying: true}}
		je, err := s.Engine.Launch(ctx, e.Job, p)
		switch {
		case err == nil:
			s.Logger.Info("catch-up launch", "job", e.Job, "run_at", tick, "job_execution_id", je.JobExecutionID)
		case errors.Is(err, batch.ErrAlreadyComplete), errors.Is(err, batch.ErrAlreadyRunning):
		default:
			s.Logger.Warn("catch-up launch failed", "job", e.Job, "err", err)
		}
	}
}

// asynqLogger adapts slog to asynq's logger.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); os.Exit(1) }

// RunWorker serves the engine's tasks and the PT task types until ctx ends,
// and /metrics on METRICS_ADDR when set. On shutdown asynq stops taking
// tasks and gives running ones ShutdownTimeout; a partition interrupted
// mid-chunk rolls that chunk back and is redelivered.
func (s *Service) RunWorker(ctx context.Context) error {
	srv := asynq.NewServer(s.Redis, asynq.Config{
		Concurrency:     s.Config.WorkerConcurrency,
		Queues:          batch.Queues(map[string]int{tasks.QueueSchedule: 6}),
		Logger:          asynqLogger{s.Logger.With("component", "asynq")},
		LogLevel:        asynq.WarnLevel,
		ShutdownTimeout: 20 * time.Second,
		// Flows move by control tasks; look for them often when idle.
		TaskCheckInterval: 50 * time.Millisecond,
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			d := time.Duration(1<<min(n, 6)) * time.Second
			return min(d, time.Minute)
		},
	})
	mux := asynq.NewServeMux()
	s.Engine.Register(mux)
	mux.Handle(tasks.TaskGrantBulkPass, tasks.GrantHandler(s.Engine))
	mux.Handle(tasks.TaskLaunch, tasks.LaunchHandler(s.Engine, time.Now))
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	var ms *http.Server
	if s.Config.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.Metrics, promhttp.HandlerOpts{}))
		// Profiles for `go tool pprof http://METRICS_ADDR/debug/pprof/profile`;
		// keep METRICS_ADDR on a private interface.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ms = &http.Server{Addr: s.Config.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := ms.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.Logger.Error("metrics server", "err", err)
			}
		}()
	}
	s.Logger.Info("worker started", "concurrency", s.Config.WorkerConcurrency, "metrics", s.Config.MetricsAddr)
	<-ctx.Done()
	s.Logger.Info("worker stopping")
	srv.Shutdown()
	if ms != nil {
		_ = ms.Close()
	}
	return nil
}

// RunScheduler registers the cron table with an asynq scheduler and runs
// the engine's reconciler until ctx ends.
func (s *Service) RunScheduler(ctx context.Context, entries []tasks.Entry, reconcileEvery, staleAfter time.Duration) error {
	sch := asynq.NewScheduler(s.Redis, &asynq.SchedulerOpts{
		Logger: asynqLogger{s.Logger.With("component", "asynq")}, LogLevel: asynq.WarnLevel, Location: time.UTC,
		PostEnqueueFunc: func(info *asynq.TaskInfo, err error) {
			if err != nil && !errors.Is(err, asynq.ErrDuplicateTask) {
				s.Logger.Warn("cron enqueue failed", "err", err)
			}
		},
	})
	for _, e := range entries {
		// Unique: a second scheduler firing the same tick adds no second task.
		if _, err := sch.Register(e.Cron, tasks.NewLaunchTask(e), asynq.Queue(tasks.QueueSchedule),
			asynq.Unique(50*time.Second), asynq.MaxRetry(3)); err != nil {
			return fmt.Errorf("schedule %s (%s): %w", e.Job, e.Cron, err)
		}
		s.Logger.Info("scheduled", "job", e.Job, "cron", e.Cron)
	}
	if err := sch.Start(); err != nil {
		return fmt.Errorf("start scheduler: %w", err)
	}
	s.catchUp(ctx, entries)
	go s.Engine.RunReconciler(ctx, reconcileEvery, staleAfter)
	<-ctx.Done()
	sch.Shutdown()
	return nil
}
