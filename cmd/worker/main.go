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
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/internal/system"
	"github.com/passbatch/passbatch/tasks"
)

func main() {
	system.Main("worker", config.Need{Redis: true}, func(cfg config.Config, log *slog.Logger) system.Program {
		return &Main{Config: cfg, Logger: log}
	})
}

// Main is the worker program.
type Main struct {
	Config config.Config
	Logger *slog.Logger

	sys     *system.System
	worker  *batch.Worker
	metrics *http.Server
	wg      sync.WaitGroup
}

// Run opens the system and starts the worker and the metrics server.
func (m *Main) Run(ctx context.Context) error {
	// The worker's sessions carry its ID: the reconciler ends them if it
	// declares the worker dead (frozen), releasing its locks.
	id := batch.NewWorkerID()
	sys, err := system.Open(ctx, m.Config, m.Logger, id)
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
		m.serveMetrics()
	}
	return nil
}

// serveMetrics serves /metrics on METRICS_ADDR (keep it on a private
// network), and the pprof profiles when PPROF allows: by default only when
// METRICS_ADDR is a loopback address, since a profile shows memory.
func (m *Main) serveMetrics() {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.sys.Metrics, promhttp.HandlerOpts{}))
	if pprofOn(m.Config.Web.Pprof, m.Config.MetricsAddr) {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	m.metrics = &http.Server{Addr: m.Config.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.metrics.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("metrics server", "err", err)
		}
	}()
}

// pprofOn says whether PPROF mode serves profiles on addr.
func pprofOn(mode, addr string) bool {
	switch mode {
	case "on":
		return true
	case "off":
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Close drains the worker, stops the metrics server and closes the system.
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
	m.wg.Wait()
	if m.sys != nil {
		m.sys.Close()
	}
	return errors.Join(errs...)
}
