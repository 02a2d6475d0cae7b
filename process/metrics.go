package process

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsServer serves /metrics of a process on METRICS_ADDR, an address
// for a private network (the Prometheus scraper, not the public port):
// no token is asked there. It also serves the pprof profiles when PPROF
// allows: by default only on a loopback address, since a profile shows
// memory.
type MetricsServer struct {
	srv  *http.Server
	done chan struct{}
}

// ServeMetrics starts serving reg on addr; pprofMode is PPROF's value.
func ServeMetrics(addr string, reg *prometheus.Registry, pprofMode string, log *slog.Logger) *MetricsServer {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if PprofOn(pprofMode, addr) {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	m := &MetricsServer{srv: &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := m.srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "addr", addr, "err", err)
		}
	}()
	return m
}

// Shutdown stops the server and waits for it.
func (m *MetricsServer) Shutdown(ctx context.Context) error {
	err := m.srv.Shutdown(ctx)
	<-m.done
	return err
}

// PprofOn says whether PPROF mode serves profiles on addr: "on", "off",
// or "loopback" (only on a loopback address).
func PprofOn(mode, addr string) bool {
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
