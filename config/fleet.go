package config

import (
	"net/url"
	"strconv"
	"time"
)

// Settings of the fleet: workers, partitions, schedule, fail-over and retention.

// ScheduleVars are the variables that override the cron table, one per
// scheduled job (tasks.DefaultSchedule; a test keeps the two the same).
var ScheduleVars = []string{
	"SCHEDULE_EXPIRE_PASSES", "SCHEDULE_ADD_PASSES", "SCHEDULE_NOTIFY_BEFORE_CLASS", "SCHEDULE_USE_PASSES",
	"SCHEDULE_MAKE_STATISTICS", "SCHEDULE_NOTIFY_BEFORE_EXPIRY", "SCHEDULE_PURGE_IDEMPOTENCY_KEYS", "SCHEDULE_EXPIRE_EXPORTS",
	"SCHEDULE_PURGE_JOB_REPOSITORY",
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
