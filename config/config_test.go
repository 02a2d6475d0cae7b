package config

import (
	"errors"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoad(t *testing.T) {
	t.Parallel()
	base := func() map[string]string {
		return map[string]string{
			"DATABASE_URL":   "postgres://u@127.0.0.1:5432/db?sslmode=disable",
			"REDIS_URL":      "redis://127.0.0.1:6379/0",
			"ADMIN_TOKEN":    "admin-token-123",
			"SESSION_SECRET": "0123456789abcdef0123456789abcdef",
		}
	}
	tests := []struct {
		name    string
		change  map[string]string
		need    Need
		wantVar string
	}{
		{name: "ok", need: Need{Redis: true, Web: true}},
		{name: "missing database", change: map[string]string{"DATABASE_URL": ""}, wantVar: "DATABASE_URL"},
		{name: "nonsense database", change: map[string]string{"DATABASE_URL": "nonsense"}, wantVar: "DATABASE_URL"},
		{name: "mysql database", change: map[string]string{"DATABASE_URL": "mysql://x/y"}, wantVar: "DATABASE_URL"},
		{name: "missing redis", change: map[string]string{"REDIS_URL": ""}, need: Need{Redis: true}, wantVar: "REDIS_URL"},
		{name: "redis not needed", change: map[string]string{"REDIS_URL": ""}},
		{name: "bad redis scheme", change: map[string]string{"REDIS_URL": "http://x"}, wantVar: "REDIS_URL"},
		{name: "sentinel ok", change: map[string]string{"REDIS_URL": "redis-sentinel://h1:26379,h2:26379?master=m"}, need: Need{Redis: true}},
		{name: "short secret", change: map[string]string{"SESSION_SECRET": "short"}, need: Need{Web: true}, wantVar: "SESSION_SECRET"},
		{name: "missing token", change: map[string]string{"ADMIN_TOKEN": ""}, need: Need{Web: true}, wantVar: "ADMIN_TOKEN"},
		{name: "bad concurrency", change: map[string]string{"WORKER_CONCURRENCY": "ten"}, wantVar: "WORKER_CONCURRENCY"},
		{name: "zero concurrency", change: map[string]string{"WORKER_CONCURRENCY": "0"}, wantVar: "WORKER_CONCURRENCY"},
		{name: "bad log level", change: map[string]string{"LOG_LEVEL": "loud"}, wantVar: "LOG_LEVEL"},
		{name: "bad http addr", change: map[string]string{"HTTP_ADDR": "8080"}, wantVar: "HTTP_ADDR"},
		{name: "bad webhook", change: map[string]string{"NOTIFY_WEBHOOK_URL": "ftp://x"}, wantVar: "NOTIFY_WEBHOOK_URL"},
		{name: "bad storage url", change: map[string]string{"STORAGE_URL": "gs://bucket"}, wantVar: "STORAGE_URL"},
		{name: "bad shutdown timeout", change: map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, wantVar: "SHUTDOWN_TIMEOUT"},
		{name: "zero shutdown timeout", change: map[string]string{"SHUTDOWN_TIMEOUT": "0"}, wantVar: "SHUTDOWN_TIMEOUT"},
		{name: "failover within heartbeats", change: map[string]string{"HEARTBEAT_EVERY": "2s", "FAILOVER_AFTER": "5s"}, wantVar: "FAILOVER_AFTER"},
		{name: "idle timeout off", change: map[string]string{"DB_IDLE_IN_TRANSACTION_TIMEOUT": "0"}},
		{name: "negative lock timeout", change: map[string]string{"DB_LOCK_TIMEOUT": "-1s"}, wantVar: "DB_LOCK_TIMEOUT"},
		{name: "compose's old example token", change: map[string]string{"ADMIN_TOKEN": "change-me-admin-token"}, need: Need{Web: true}, wantVar: "ADMIN_TOKEN"},
		{name: "compose's old example secret", change: map[string]string{"SESSION_SECRET": "change-me-session-secret-0123456789abcdef"}, need: Need{Web: true}, wantVar: "SESSION_SECRET"},
		{name: "the Makefile's old dev token", change: map[string]string{"ADMIN_TOKEN": "dev-admin-token"}, need: Need{Web: true}, wantVar: "ADMIN_TOKEN"},
		{name: "the README's example secret", change: map[string]string{"SESSION_SECRET": "example-session-secret-0123456789abcdef"}, need: Need{Web: true}, wantVar: "SESSION_SECRET"},
		{name: "bad cookie secure", change: map[string]string{"COOKIE_SECURE": "maybe"}, wantVar: "COOKIE_SECURE"},
		{name: "bad trusted proxy", change: map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, lb.example"}, wantVar: "TRUSTED_PROXIES"},
		{name: "short metrics token", change: map[string]string{"METRICS_TOKEN": "short"}, wantVar: "METRICS_TOKEN"},
		{name: "the admin token as the metrics token", change: map[string]string{"ADMIN_TOKEN": "0123456789abcdef-admin", "METRICS_TOKEN": "0123456789abcdef-admin"}, wantVar: "METRICS_TOKEN"},
		{name: "bad redrive limit", change: map[string]string{"REDRIVE_LIMIT": "0"}, wantVar: "REDRIVE_LIMIT"},
		{name: "bad repository retention", change: map[string]string{"REPOSITORY_RETENTION": "ninety days"}, wantVar: "REPOSITORY_RETENTION"},
		{name: "bad pprof", change: map[string]string{"PPROF": "yes"}, wantVar: "PPROF"},
		{name: "bad cutoff", change: map[string]string{"BOOKING_CANCEL_CUTOFF": "-1h"}, wantVar: "BOOKING_CANCEL_CUTOFF"},
		{name: "bad pool", change: map[string]string{"DB_MAX_CONNS": "0"}, wantVar: "DB_MAX_CONNS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := base()
			for k, v := range tt.change {
				m[k] = v
			}
			c, err := Load(env(m), tt.need)
			if tt.wantVar == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if c.HTTPAddr != ":8080" || c.WorkerConcurrency != 10 || c.StorageDir != "./.data/files" {
					t.Fatalf("defaults not applied: %+v", c)
				}
				if !c.Web.CookieSecure || !c.Web.AsynqmonReadOnly || c.Web.MetricsToken != "" || c.Web.Pprof != "loopback" {
					t.Fatalf("web defaults not applied: %+v", c.Web)
				}
				if c.Fleet.ShutdownTimeout != 25*time.Second || c.Fleet.FailoverAfter != 5*time.Second || c.Fleet.ReconcileStaleAfter != 2*time.Minute ||
					c.Fleet.RedriveLimit != 3 || c.Fleet.RepositoryRetention != 90*24*time.Hour {
					t.Fatalf("fleet defaults not applied: %+v", c.Fleet)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *Error for %s, got %v", tt.wantVar, err)
			}
			if ce.Var != tt.wantVar {
				t.Fatalf("error names %s, want %s (%v)", ce.Var, tt.wantVar, err)
			}
		})
	}
}
