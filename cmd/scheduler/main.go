// Command scheduler enqueues the jobs' cron launches and runs the
// reconciler, which re-drives the work of dead workers within seconds and
// stalled executions after RECONCILE_STALE_AFTER. Several may run: a tick
// produces one execution whatever the number of schedulers, and two
// reconcilers skip each other's locked rows.
//
// SCHEDULE_<JOB> overrides a job's cron or turns it off.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/process"
	"github.com/passbatch/passbatch/tasks"
)

func main() {
	process.Main("scheduler", config.Need{Redis: true}, func(cfg config.Config, log *slog.Logger) process.Program {
		entries, err := tasks.Schedule(cfg.Schedule)
		if err != nil {
			fmt.Fprintf(os.Stderr, "scheduler: config: %v\n", err)
			os.Exit(2)
		}
		return &Main{Config: cfg, Logger: log, Entries: entries}
	})
}

// Main is the scheduler program.
type Main struct {
	Config  config.Config
	Logger  *slog.Logger
	Entries []tasks.Entry

	sys    *process.System
	sch    *asynq.Scheduler
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Run registers the cron table, launches each job's latest tick and starts
// the reconciler.
func (m *Main) Run(ctx context.Context) error {
	sys, err := process.Open(ctx, m.Config, m.Logger, "passbatch-scheduler")
	if err != nil {
		return err
	}
	m.sys = sys
	m.sch = asynq.NewScheduler(sys.Redis, &asynq.SchedulerOpts{
		Logger: batch.AsynqLogger(m.Logger.With("component", "asynq")), LogLevel: asynq.WarnLevel, Location: time.UTC,
		PostEnqueueFunc: func(info *asynq.TaskInfo, err error) {
			if err != nil && !errors.Is(err, asynq.ErrDuplicateTask) {
				m.Logger.Warn("cron enqueue failed", "err", err)
			}
		},
	})
	for _, e := range m.Entries {
		// Unique: a second scheduler firing the same tick adds no second task.
		if _, err := m.sch.Register(e.Cron, tasks.NewLaunchTask(e), asynq.Queue(tasks.QueueSchedule),
			asynq.Unique(50*time.Second), asynq.MaxRetry(3)); err != nil {
			return fmt.Errorf("schedule %s (%s): %w", e.Job, e.Cron, err)
		}
		m.Logger.Info("scheduled", "job", e.Job, "cron", e.Cron)
	}
	if err := m.sch.Start(); err != nil {
		return fmt.Errorf("start scheduler: %w", err)
	}
	host, _ := os.Hostname()
	if err := tasks.Register(ctx, sys.DB, m.Entries, fmt.Sprintf("%s/%d", host, os.Getpid())); err != nil {
		return err
	}
	tasks.CatchUp(ctx, sys.Engine, m.Entries, time.Now(), m.Logger)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		sys.Engine.RunReconciler(rctx, batch.ReconcileOptions{
			Every: m.Config.Fleet.ReconcileEvery, StaleAfter: m.Config.Fleet.ReconcileStaleAfter, FailoverAfter: m.Config.Fleet.FailoverAfter,
			RedriveLimit: m.Config.Fleet.RedriveLimit, Inspector: sys.Inspector,
		})
	}()
	return nil
}

// Close stops the cron and the reconciler, waits for them and closes the
// process.
func (m *Main) Close() error {
	if m.sch != nil {
		m.sch.Shutdown()
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.sys != nil {
		m.sys.Close()
	}
	return nil
}
