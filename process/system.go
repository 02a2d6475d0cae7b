// Package process opens what a passbatch process runs on, from its config:
// the database, Redis, the notifier, file storage, the job registry and the
// batch engine. Every main package opens one and adds its own front (the
// api's web server, the worker, the scheduler).
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/internal/tracing"
	"github.com/passbatch/passbatch/notify"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
)

// System is the wired system a process runs.
type System struct {
	Config config.Config
	Logger *slog.Logger
	DB     *bun.DB
	Redis  asynq.RedisConnOpt
	Client *asynq.Client
	// RedisClient is a plain client for health checks.
	RedisClient redis.UniversalClient
	Store       storage.Store
	Notifier    notify.Notifier
	Registry    *batch.Registry
	Engine      *batch.Engine
	// Inspector reads asynq's queues and servers (nil without Redis).
	Inspector *asynq.Inspector
	// Metrics is the process's Prometheus registry (Go and process
	// collectors, the engine's metrics).
	Metrics *prometheus.Registry

	stopTracing func(context.Context) error
}

// Open connects to Postgres and (when configured) Redis and builds the
// engine. appName names the process's database sessions (a worker's is its
// worker ID); they get the config's session limits, so a frozen process
// cannot hold locks for long.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, appName string) (*System, error) {
	s := &System{Config: cfg, Logger: log, Metrics: prometheus.NewRegistry()}
	if cfg.Tracing {
		stop, err := tracing.Setup(ctx, processName(appName))
		if err != nil {
			return nil, err
		}
		s.stopTracing = stop
	}
	s.Metrics.MustRegister(ProcessCollectors()...)
	db, err := database.Open(ctx, cfg.DatabaseURL, database.Options{
		MaxOpenConns: cfg.DBMaxConns, ApplicationName: appName,
		Session: database.SessionLimits{
			IdleInTransaction: cfg.Fleet.IdleInTransactionTimeout, Lock: cfg.Fleet.LockTimeout, Statement: cfg.Fleet.StatementTimeout,
		},
	})
	if err != nil {
		return nil, err
	}
	s.DB = db
	if err := s.openRedis(ctx); err != nil {
		s.Close()
		return nil, err
	}
	// Only a process that uses files opens the store (and so needs its
	// credentials): the scheduler and ptctl's job commands do not.
	s.Store = storage.None{}
	if cfg.Need.Storage {
		if s.Store, err = storage.Open(ctx, cfg.StorageURL, cfg.StorageDir, storage.S3Options{
			Endpoint: cfg.S3.Endpoint, Insecure: cfg.S3.Insecure, AccessKey: cfg.S3.AccessKeyID, Secret: cfg.S3.SecretAccessKey, Region: cfg.S3.Region,
		}); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.Notifier = notify.FromConfig(cfg.NotifyWebhookURL, log)
	s.Registry = tasks.Registry(tasks.Deps{DB: db, Notifier: s.Notifier, Store: s.Store, Logger: log,
		RepositoryRetention: cfg.Fleet.RepositoryRetention})
	if s.Redis != nil {
		s.Inspector = asynq.NewInspector(s.Redis)
	}
	sizer := batch.FixedPartitions(cfg.Partitions)
	if cfg.Partitions == 0 {
		sizer = batch.FixedPartitions(batch.MinPartitions)
		if s.Inspector != nil {
			sizer = batch.AutoPartitions(s.Inspector, cfg.PartitionMinRows, log)
		}
	}
	s.Engine = batch.New(db, s.Client, s.Registry, batch.Options{Logger: log, Metrics: batch.NewMetrics(s.Metrics),
		MaxRetry: cfg.Fleet.TaskMaxRetry, Partitions: sizer, FixedSize: cfg.Partitions > 0, PartitionsAtOnce: cfg.PartitionsAtOnce})
	return s, nil
}

// openRedis connects the asynq client and the Redis client of REDIS_URL,
// when set.
func (s *System) openRedis(ctx context.Context) error {
	if s.Config.RedisURL == "" {
		return nil
	}
	opt, err := asynq.ParseRedisURI(s.Config.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	s.Redis = opt
	s.Client = asynq.NewClient(opt)
	if c, ok := opt.MakeRedisClient().(redis.UniversalClient); ok {
		s.RedisClient = c
	}
	return refuseCluster(ctx, s.RedisClient)
}

// processName is the process kind in appName ("passbatch-api" → "api");
// a worker's sessions are named by its worker id.
func processName(appName string) string {
	if p, ok := strings.CutPrefix(appName, "passbatch-"); ok {
		return p
	}
	return "worker"
}

// ProcessCollectors are the collectors every process registers: the Go
// runtime's and the process's (RSS, CPU, open files).
func ProcessCollectors() []prometheus.Collector {
	return []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
}

// RepositoryCollectors are what the api adds to its /metrics: the job
// repository (executions, running partitions, idle executions, live
// workers), the registered cron table (missed ticks) and, with insp,
// asynq's queues (asynq_queue_size, asynq_queue_latency_seconds, …).
// Workers do not add them: one scrape of one api is enough for the fleet.
func RepositoryCollectors(db *bun.DB, insp *asynq.Inspector) []prometheus.Collector {
	cs := []prometheus.Collector{batch.NewRepositoryCollector(db), tasks.NewScheduleCollector(db)}
	if insp != nil {
		cs = append(cs, metrics.NewQueueMetricsCollector(insp))
	}
	return cs
}

// ErrRedisCluster is REDIS_URL naming a Redis Cluster node.
var ErrRedisCluster = errors.New("REDIS_URL: this is a Redis Cluster node; passbatch needs one Redis primary " +
	"(with replicas and Sentinel, redis-sentinel://, for failover): asynq's multi-key scripts fail with CROSSSLOT on a cluster")

// refuseCluster returns ErrRedisCluster when rc is a Redis Cluster node.
// An unreachable Redis is not refused here: processes start and retry.
func refuseCluster(ctx context.Context, rc redis.UniversalClient) error {
	if rc == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	info, err := rc.Info(ctx, "cluster").Result()
	if err == nil && strings.Contains(info, "cluster_enabled:1") {
		return ErrRedisCluster
	}
	return nil
}

// PingRedis checks that Redis answers.
func (s *System) PingRedis(ctx context.Context) error {
	if s.RedisClient == nil {
		return fmt.Errorf("redis is not configured")
	}
	return s.RedisClient.Ping(ctx).Err()
}

// Close releases the connections.
func (s *System) Close() {
	if s.Client != nil {
		s.Client.Close()
	}
	if s.RedisClient != nil {
		s.RedisClient.Close()
	}
	if s.Inspector != nil {
		s.Inspector.Close()
	}
	if s.DB != nil {
		s.DB.Close()
	}
	if s.stopTracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.stopTracing(ctx); err != nil {
			s.Logger.Warn("could not flush the last traces", "err", err)
		}
	}
}
