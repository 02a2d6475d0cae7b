// Package config reads passbatch's settings from the environment (DESIGN §1).
//
// Every process calls Load with the parts it needs; a missing or malformed
// variable is reported as an *Error naming the variable and what is expected,
// and main prints that one line and exits with status 2.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/passbatch/passbatch/internal/tracing"
)

// Config is the whole configuration of a passbatch process.
type Config struct {
	// Need is what the process was loaded for: the groups of settings it
	// uses (a scheduler opens no file storage, so it needs no credentials).
	Need Need
	// DatabaseURL is the Postgres URL (postgres://...). Required.
	DatabaseURL string
	// RedisURL is the Redis URL (redis://, rediss://, redis-socket://,
	// redis-sentinel://). Required by processes that touch the queues.
	RedisURL string
	// HTTPAddr is where the api listens. Default ":8080".
	HTTPAddr string
	// AdminToken is the bearer token that authenticates an admin. Required by the api.
	AdminToken string
	// SessionSecret signs session cookies; at least 32 bytes. Required by the api.
	SessionSecret string
	// StorageDir is where reports and exports are stored. Default "./.data/files".
	StorageDir string
	// StorageURL, when set (s3://bucket/prefix), stores them in an
	// S3-compatible bucket instead, reached with S3.
	StorageURL string
	// S3 reaches the bucket of StorageURL.
	S3 S3
	// Schedule holds the cron overrides set in the environment, by
	// variable (SCHEDULE_<JOB>: a cron expression or "off"); the jobs'
	// package parses them.
	Schedule map[string]string
	// NotifyWebhookURL receives notifications; empty sends them to the log.
	NotifyWebhookURL string
	// WorkerConcurrency is the number of tasks one worker runs at once. Default 10.
	WorkerConcurrency int
	// Partitions is how many partitions a partitioned step gets
	// (PARTITIONS): 0 for "auto" (the default: sized from the live worker
	// slots and the step's rows), or a fixed count from 1 to 1024.
	Partitions int
	// PartitionMinRows is the fewest rows an automatically sized partition
	// gets (PARTITION_MIN_ROWS). Default 5000.
	PartitionMinRows int64
	// PartitionsAtOnce is how many partitions of one step run at once
	// across the fleet (PARTITIONS_AT_ONCE): about the cores of Postgres.
	// Default 4.
	PartitionsAtOnce int
	// DBMaxConns bounds each process's Postgres pool (DB_MAX_CONNS).
	// Default 4 x WorkerConcurrency.
	DBMaxConns int
	// MetricsAddr is where a worker serves /metrics; empty disables it. Default "".
	MetricsAddr string
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel slog.Level
	// LogFormat is json or text; default text in a terminal, json otherwise.
	LogFormat string

	// Fleet holds how processes hand work over, fail over and drain.
	Fleet Fleet
	// Web holds the api's security settings.
	Web Web
	// Tracing is on when the OTEL_* variables name an OTLP endpoint (see
	// internal/tracing); the OpenTelemetry SDK reads the rest of them.
	Tracing bool
}

// S3 is how to reach an S3-compatible bucket.
type S3 struct {
	// Endpoint is host[:port] (S3_ENDPOINT). Default s3.amazonaws.com.
	Endpoint string
	// Insecure speaks plain HTTP (S3_INSECURE=true).
	Insecure bool
	// AccessKeyID, SecretAccessKey and Region sign the requests
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
	AccessKeyID, SecretAccessKey, Region string
}

// ScheduleVars are the variables that override the cron table, one per
// scheduled job (tasks.DefaultSchedule; a test keeps the two the same).
var ScheduleVars = []string{
	"SCHEDULE_EXPIRE_PASSES", "SCHEDULE_ADD_PASSES", "SCHEDULE_NOTIFY_BEFORE_CLASS", "SCHEDULE_USE_PASSES",
	"SCHEDULE_MAKE_STATISTICS", "SCHEDULE_NOTIFY_BEFORE_EXPIRY", "SCHEDULE_PURGE_IDEMPOTENCY_KEYS", "SCHEDULE_EXPIRE_EXPORTS",
	"SCHEDULE_PURGE_JOB_REPOSITORY",
}

// Web is how the api is published.
type Web struct {
	// MetricsToken is the bearer token the api's public /metrics wants
	// (METRICS_TOKEN; never ADMIN_TOKEN). Empty: /metrics is not served on
	// the public port, only on METRICS_ADDR.
	MetricsToken string
	// CookieSecure marks cookies Secure with __Host- names and sends HSTS.
	// Default true (COOKIE_SECURE); make dev sets false for plain HTTP.
	CookieSecure bool
	// TrustedProxies are the load balancers whose X-Forwarded-For is
	// believed (TRUSTED_PROXIES: comma-separated addresses or CIDRs).
	// Default none: the connection's peer is the client.
	TrustedProxies []netip.Prefix
	// AsynqmonReadOnly keeps /admin/monitoring from changing tasks and
	// queues. Default true (ASYNQMON_READONLY).
	AsynqmonReadOnly bool
	// Pprof says when a worker serves /debug/pprof on METRICS_ADDR:
	// "loopback" (default: only when METRICS_ADDR is a loopback address),
	// "on" or "off" (PPROF).
	Pprof string
	// BookingCancelCutoff is how long before a class a member can still
	// cancel a booking (BOOKING_CANCEL_CUTOFF). Default 1h.
	BookingCancelCutoff time.Duration
}

// publishedSecrets are pieces of the example secrets in this repository's
// docs, compose file and Makefiles: a server with one of them is open to
// anyone who read them.
var publishedSecrets = []string{"change-me", "changeme", "dev-admin-token", "dev-session-secret", "example", "replace-me"}

// published reports whether a secret is (made from) a published example.
func published(secret string) bool {
	l := strings.ToLower(secret)
	for _, p := range publishedSecrets {
		if strings.Contains(l, p) {
			return true
		}
	}
	return false
}

// Fleet is how a fleet of processes keeps its work moving (DESIGN §9).
type Fleet struct {
	// ShutdownTimeout bounds a process's drain after SIGTERM. Default 25s
	// (SHUTDOWN_TIMEOUT), under Kubernetes' default 30s grace period.
	ShutdownTimeout time.Duration
	// HeartbeatEvery is how often a worker records that it lives. Default
	// 1s (HEARTBEAT_EVERY).
	HeartbeatEvery time.Duration
	// FailoverAfter is how old a worker's heartbeat may be before the
	// reconciler re-drives what it holds. Default 5s (FAILOVER_AFTER); at
	// least three heartbeats.
	FailoverAfter time.Duration
	// ReconcileEvery is how often the scheduler's reconciler runs. Default
	// 2s (RECONCILE_EVERY).
	ReconcileEvery time.Duration
	// ReconcileStaleAfter is how long an execution may make no progress
	// before the work no live worker holds is checked against Redis and,
	// when its task is gone, re-driven. Default 2m (RECONCILE_STALE_AFTER).
	ReconcileStaleAfter time.Duration
	// RedriveLimit is how many times one step execution is re-driven
	// without progress before it ends FAILED with the last error. Default
	// 3 (REDRIVE_LIMIT).
	RedriveLimit int
	// RepositoryRetention is how long finished executions stay in the job
	// repository before the scheduled purge deletes them. Default 90 days
	// (REPOSITORY_RETENTION: 90d, 2160h…; 0 keeps everything).
	RepositoryRetention time.Duration
	// IdleInTransactionTimeout ends a worker's transaction left idle this
	// long (a frozen process), releasing its locks. Default 5s
	// (DB_IDLE_IN_TRANSACTION_TIMEOUT; 0 turns it off).
	IdleInTransactionTimeout time.Duration
	// LockTimeout bounds a wait for a row lock. Default 15s (DB_LOCK_TIMEOUT).
	LockTimeout time.Duration
	// StatementTimeout bounds one statement. Default 5m (DB_STATEMENT_TIMEOUT).
	StatementTimeout time.Duration
	// TaskMaxRetry is how often asynq retries a task that failed on an
	// infrastructure fault before archiving it (the reconciler re-drives
	// its work after). Default 25 (TASK_MAX_RETRY), about 20 minutes of
	// retries; every process that enqueues must use the same.
	TaskMaxRetry int
}

// Need says which optional groups of settings a process requires.
type Need struct {
	Redis   bool // REDIS_URL
	Web     bool // ADMIN_TOKEN, SESSION_SECRET, HTTP_ADDR
	Storage bool // STORAGE_DIR or STORAGE_URL and its S3 credentials: the process reads or writes files
}

// Error is a configuration mistake: the variable and what was expected.
type Error struct {
	Var  string
	Want string
}

func (e *Error) Error() string {
	return fmt.Sprintf("config: %s: %s", e.Var, e.Want)
}

// FromEnv loads the configuration from the process environment.
func FromEnv(need Need) (Config, error) {
	return Load(os.LookupEnv, need)
}

// Load reads the configuration through lookup (os.LookupEnv in production).
// It returns the first problem found as an *Error.
func Load(lookup func(string) (string, bool), need Need) (Config, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	c := Config{
		Need:             need,
		DatabaseURL:      get("DATABASE_URL"),
		RedisURL:         get("REDIS_URL"),
		HTTPAddr:         get("HTTP_ADDR"),
		AdminToken:       get("ADMIN_TOKEN"),
		SessionSecret:    get("SESSION_SECRET"),
		StorageDir:       get("STORAGE_DIR"),
		StorageURL:       get("STORAGE_URL"),
		NotifyWebhookURL: get("NOTIFY_WEBHOOK_URL"),
		MetricsAddr:      get("METRICS_ADDR"),
		LogFormat:        get("LOG_FORMAT"),
	}
	for _, step := range []func(*Config, func(string) string, Need) error{
		loadDatabase, loadRedis, loadAddrs, loadSecrets, loadStorage, loadSchedule, loadWorkers, loadLogging,
	} {
		if err := step(&c, get, need); err != nil {
			return c, err
		}
	}
	var err error
	if c.Fleet, err = loadFleet(get); err != nil {
		return c, err
	}
	c.Web, err = loadWeb(get, c)
	c.Tracing = tracing.Enabled(lookup)
	return c, err
}

// loadDatabase checks DATABASE_URL.
func loadDatabase(c *Config, get func(string) string, need Need) error {
	if c.DatabaseURL == "" {
		return &Error{"DATABASE_URL", "required, e.g. postgres://user:pass@localhost:5432/passbatch?sslmode=disable"}
	}
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return &Error{"DATABASE_URL", "want a postgres://host/db URL"}
	}
	return nil
}

// loadRedis checks REDIS_URL (required when need.Redis).
func loadRedis(c *Config, get func(string) string, need Need) error {
	if need.Redis || c.RedisURL != "" {
		if c.RedisURL == "" {
			return &Error{"REDIS_URL", "required, e.g. redis://localhost:6379/0"}
		}
		u, err := url.Parse(c.RedisURL)
		if err != nil {
			return &Error{"REDIS_URL", "want a redis://, rediss://, redis-socket:// or redis-sentinel:// URL"}
		}
		switch u.Scheme {
		case "redis", "rediss", "redis-sentinel":
			if u.Host == "" {
				return &Error{"REDIS_URL", "want a host, e.g. redis://localhost:6379/0"}
			}
		case "redis-socket":
			if u.Path == "" {
				return &Error{"REDIS_URL", "want a socket path, e.g. redis-socket:///run/redis.sock"}
			}
		default:
			return &Error{"REDIS_URL", "want a redis://, rediss://, redis-socket:// or redis-sentinel:// URL"}
		}
	}
	return nil
}

// loadAddrs checks HTTP_ADDR (default :8080) and METRICS_ADDR.
func loadAddrs(c *Config, get func(string) string, need Need) error {
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return &Error{"HTTP_ADDR", "want host:port or :port, e.g. :8080"}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return &Error{"METRICS_ADDR", "want host:port or :port, e.g. 127.0.0.1:9101"}
		}
	}
	return nil
}

// loadSecrets checks the api's token and secret (need.Web).
func loadSecrets(c *Config, get func(string) string, need Need) error {
	if need.Web {
		if c.AdminToken == "" {
			return &Error{"ADMIN_TOKEN", "required: the bearer token admins use"}
		}
		if len(c.AdminToken) < 12 {
			return &Error{"ADMIN_TOKEN", "too short: use at least 12 characters"}
		}
		if len(c.SessionSecret) < 32 {
			return &Error{"SESSION_SECRET", "required: at least 32 random characters"}
		}
		if published(c.AdminToken) {
			return &Error{"ADMIN_TOKEN", "is an example from the docs; use a random one (openssl rand -hex 24)"}
		}
		if published(c.SessionSecret) {
			return &Error{"SESSION_SECRET", "is an example from the docs; use a random one (openssl rand -hex 32)"}
		}
	}
	return nil
}

// loadStorage reads STORAGE_DIR, STORAGE_URL and the S3 settings.
func loadStorage(c *Config, get func(string) string, need Need) error {
	if c.StorageDir == "" {
		c.StorageDir = "./.data/files"
	}
	if c.StorageURL != "" {
		if u, err := url.Parse(c.StorageURL); err != nil || u.Scheme != "s3" || u.Host == "" {
			return &Error{"STORAGE_URL", "want s3://bucket/prefix, or empty for STORAGE_DIR"}
		}
	}
	c.S3 = S3{Endpoint: get("S3_ENDPOINT"), AccessKeyID: get("AWS_ACCESS_KEY_ID"), SecretAccessKey: get("AWS_SECRET_ACCESS_KEY"), Region: get("AWS_REGION")}
	if v := get("S3_INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return &Error{"S3_INSECURE", "want true or false"}
		}
		c.S3.Insecure = b
	}
	return nil
}

// loadSchedule reads the SCHEDULE_<JOB> overrides.
func loadSchedule(c *Config, get func(string) string, need Need) error {
	c.Schedule = map[string]string{}
	for _, k := range ScheduleVars {
		if v := get(k); v != "" {
			c.Schedule[k] = v
		}
	}
	return nil
}

// loadWorkers reads NOTIFY_WEBHOOK_URL, WORKER_CONCURRENCY, DB_MAX_CONNS,
// PARTITIONS and PARTITIONS_AT_ONCE.
func loadWorkers(c *Config, get func(string) string, need Need) error {
	if c.NotifyWebhookURL != "" {
		if u, err := url.Parse(c.NotifyWebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &Error{"NOTIFY_WEBHOOK_URL", "want an http:// or https:// URL, or empty for the log"}
		}
	}
	var err error
	if c.WorkerConcurrency, err = intSetting(get, "WORKER_CONCURRENCY", 10, 1, 1000); err != nil {
		return err
	}
	switch v := get("PARTITIONS"); v {
	case "", "auto":
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			return &Error{"PARTITIONS", "want auto or a whole number from 1 to 1024"}
		}
		c.Partitions = n
	}
	if c.DBMaxConns, err = intSetting(get, "DB_MAX_CONNS", 4*c.WorkerConcurrency, 1, 1000); err != nil {
		return err
	}
	if c.PartitionsAtOnce, err = intSetting(get, "PARTITIONS_AT_ONCE", 4, 1, 1024); err != nil {
		return err
	}
	minRows, err := intSetting(get, "PARTITION_MIN_ROWS", 5000, 1, 100_000_000)
	c.PartitionMinRows = int64(minRows)
	return err
}

// loadLogging reads LOG_LEVEL and LOG_FORMAT.
func loadLogging(c *Config, get func(string) string, need Need) error {
	c.LogLevel = slog.LevelInfo
	if v := get("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return &Error{"LOG_LEVEL", "want debug, info, warn or error"}
		}
	}
	switch c.LogFormat {
	case "", "json", "text":
	default:
		return &Error{"LOG_FORMAT", "want json or text"}
	}
	return nil
}

// loadWeb reads the api's security settings.
func loadWeb(get func(string) string, c Config) (Web, error) {
	w := Web{MetricsToken: get("METRICS_TOKEN"), CookieSecure: true, AsynqmonReadOnly: true, Pprof: "loopback"}
	switch {
	case w.MetricsToken == "":
	case len(w.MetricsToken) < 12 || published(w.MetricsToken):
		return w, &Error{"METRICS_TOKEN", "want at least 12 random characters"}
	case w.MetricsToken == c.AdminToken:
		return w, &Error{"METRICS_TOKEN", "want a token of its own, not ADMIN_TOKEN: a scraper must not hold the admin's keys"}
	}
	for _, b := range []struct {
		name string
		into *bool
	}{{"COOKIE_SECURE", &w.CookieSecure}, {"ASYNQMON_READONLY", &w.AsynqmonReadOnly}} {
		if v := get(b.name); v != "" {
			t, err := strconv.ParseBool(v)
			if err != nil {
				return w, &Error{b.name, "want true or false"}
			}
			*b.into = t
		}
	}
	for _, f := range strings.Split(get("TRUSTED_PROXIES"), ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return w, &Error{"TRUSTED_PROXIES", "want addresses or CIDRs, comma-separated, e.g. 10.0.0.0/8"}
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		w.TrustedProxies = append(w.TrustedProxies, p)
	}
	switch v := get("PPROF"); v {
	case "":
	case "loopback", "on", "off":
		w.Pprof = v
	default:
		return w, &Error{"PPROF", "want loopback, on or off"}
	}
	w.BookingCancelCutoff = time.Hour
	if v := get("BOOKING_CANCEL_CUTOFF"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 7*24*time.Hour {
			return w, &Error{"BOOKING_CANCEL_CUTOFF", "want a duration from 0s to 168h, e.g. 1h"}
		}
		w.BookingCancelCutoff = d
	}
	return w, nil
}

// loadFleet reads the fleet's durations.
func loadFleet(get func(string) string) (Fleet, error) {
	f := Fleet{}
	for _, d := range []struct {
		name   string
		into   *time.Duration
		def    time.Duration
		zeroOK bool
	}{
		{"SHUTDOWN_TIMEOUT", &f.ShutdownTimeout, 25 * time.Second, false},
		{"HEARTBEAT_EVERY", &f.HeartbeatEvery, time.Second, false},
		{"FAILOVER_AFTER", &f.FailoverAfter, 5 * time.Second, false},
		{"RECONCILE_EVERY", &f.ReconcileEvery, 2 * time.Second, false},
		{"RECONCILE_STALE_AFTER", &f.ReconcileStaleAfter, 2 * time.Minute, false},
		{"DB_IDLE_IN_TRANSACTION_TIMEOUT", &f.IdleInTransactionTimeout, 5 * time.Second, true},
		{"DB_LOCK_TIMEOUT", &f.LockTimeout, 15 * time.Second, true},
		{"DB_STATEMENT_TIMEOUT", &f.StatementTimeout, 5 * time.Minute, true},
	} {
		*d.into = d.def
		v := get(d.name)
		if v == "" {
			continue
		}
		n, err := time.ParseDuration(v)
		if err != nil || n < 0 || (n == 0 && !d.zeroOK) {
			want := "want a duration such as 30s"
			if d.zeroOK {
				want += " (0 turns it off)"
			}
			return f, &Error{d.name, want}
		}
		*d.into = n
	}
	var err error
	if f.TaskMaxRetry, err = intSetting(get, "TASK_MAX_RETRY", 25, 1, 1000); err != nil {
		return f, err
	}
	f.RepositoryRetention = 90 * 24 * time.Hour
	if v := get("REPOSITORY_RETENTION"); v != "" {
		d, err := parseDays(v)
		if err != nil || d < 0 || (d > 0 && d < time.Hour) {
			return f, &Error{"REPOSITORY_RETENTION", "want a duration of at least an hour such as 90d or 2160h (0 keeps everything)"}
		}
		f.RepositoryRetention = d
	}
	if f.RedriveLimit, err = intSetting(get, "REDRIVE_LIMIT", 3, 1, 1000); err != nil {
		return f, err
	}
	if f.FailoverAfter < 3*f.HeartbeatEvery {
		return f, &Error{"FAILOVER_AFTER", "want at least three HEARTBEAT_EVERY, or a slow heartbeat reads as a death"}
	}
	return f, nil
}

// intSetting reads a whole-number setting from lo to hi, def when unset.
func intSetting(get func(string) string, name string, def, lo, hi int) (int, error) {
	v := get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return def, &Error{name, fmt.Sprintf("want a whole number from %d to %d", lo, hi)}
	}
	return n, nil
}

// parseDays is time.ParseDuration that also takes whole days ("90d").
func parseDays(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

// Logger builds the process logger: JSON in production, text in a terminal
// (LOG_FORMAT overrides the guess).
func (c Config) Logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	format := c.LogFormat
	if format == "" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts))
}
