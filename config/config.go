// Package config reads passbatch's settings from the environment (DESIGN §1).
//
// Every process calls Load with the parts it needs; a missing or malformed
// variable is reported as an *Error naming the variable and what is expected,
// and main prints that one line and exits with status 2.
package config

import (
	"fmt"
	"log/slog"
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
