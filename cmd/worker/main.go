// Command worker runs the batch engine's task handlers on asynq. Run as
// many replicas as you like, on any machine; each serves /metrics (and
// pprof) on METRICS_ADDR when set. On SIGTERM it drains: no new tasks, its
// partitions handed back at their next chunk boundary, exit within
// SHUTDOWN_TIMEOUT.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/process"
	"github.com/passbatch/passbatch/tasks"
)

func main() {
	process.Main("worker", config.Need{Redis: true, Storage: true}, func(cfg config.Config, log *slog.Logger) process.Program {
		return &Main{Config: cfg, Logger: log}
	})
}

// Main is the worker program.
type Main struct {
	Config config.Config
	Logger *slog.Logger

	sys     *process.System
	worker  *batch.Worker
	metrics *process.MetricsServer
}

// Run opens the system and starts the worker and the metrics server.
func (m *Main) Run(ctx context.Context) error {
	// The worker's sessions carry its ID: the reconciler ends them if it
	// declares the worker dead (frozen), releasing its locks.
	id := batch.NewWorkerID()
	sys, err := process.Open(ctx, m.Config, m.Logger, id)
	if err != nil {
		return err
	}
	m.sys = sys
	m.worker = sys.Engine.NewWorker(sys.Redis, batch.WorkerOptions{
		ID:              id,
		Concurrency:     m.Config.WorkerConcurrency,
		Queues:          batch.Queues(map[string]int{tasks.QueueSchedule: 6}),
		ShutdownTimeout: m.Config.Fleet.ShutdownTimeout - time.Second, // a second for the rest
		HeartbeatEvery:  m.Config.Fleet.HeartbeatEvery,
		Logger:          m.Logger,
	})
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TaskGrantBulkPass, tasks.GrantHandler(sys.Engine))
	mux.Handle(tasks.TaskLaunch, tasks.LaunchHandler(sys.Engine, time.Now))
	if err := m.worker.Start(ctx, mux); err != nil {
		return err
	}
	if m.Config.MetricsAddr != "" {
		m.metrics = process.ServeMetrics(m.Config.MetricsAddr, m.sys.Metrics, m.Config.Web.Pprof, m.Logger)
	}
	return nil
}

// Close drains the worker, stops the metrics server and closes the process.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.Fleet.ShutdownTimeout)
	defer cancel()
	var errs []error
	if m.worker != nil {
		m.worker.Stop(ctx)
	}
	if m.metrics != nil {
		if err := m.metrics.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metrics server: %w", err))
		}
	}
	if m.sys != nil {
		m.sys.Close()
	}
	return errors.Join(errs...)
}
