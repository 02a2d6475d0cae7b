package tasks

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"
)

// ScheduleGrace is how long after a cron tick its execution may take to
// appear before the tick counts as missed.
const ScheduleGrace = 2 * time.Minute

var (
	descMissed = prometheus.NewDesc("passbatch_schedule_missed",
		"1 when the job's latest cron tick (older than 2 minutes) has no execution launched since; 0 otherwise.", []string{"job"}, nil)
	descLastLaunch = prometheus.NewDesc("passbatch_job_last_launch_timestamp_seconds",
		"When the job's latest execution was created (Unix time).", []string{"job"}, nil)
)

// ScheduleCollector reports, for every job in the registered cron table,
// whether its latest tick was missed (no scheduler alive, Redis down, the
// launch refused) and when it last launched. It reads Postgres at most
// every 15 s.
type ScheduleCollector struct {
	db *bun.DB
	// Now is the clock. Default time.Now.
	Now func() time.Time

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

// NewScheduleCollector returns a collector over db; register it once.
func NewScheduleCollector(db *bun.DB) *ScheduleCollector {
	return &ScheduleCollector{db: db, Now: time.Now}
}

// Describe implements prometheus.Collector.
func (c *ScheduleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMissed
	ch <- descLastLaunch
}

// Collect implements prometheus.Collector.
func (c *ScheduleCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > 15*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c.metrics, c.at = c.read(ctx), time.Now()
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

func (c *ScheduleCollector) read(ctx context.Context) []prometheus.Metric {
	now := c.Now()
	reg, err := Registrations(ctx, c.db, now)
	if err != nil {
		return []prometheus.Metric{prometheus.NewInvalidMetric(descMissed, err)}
	}
	var rows []struct {
		Job  string    `bun:"job_name"`
		Last time.Time `bun:"last"`
	}
	// The job names by a skip scan of batch_job_execution_job_name_idx,
	// then each one's newest execution: index lookups, not an aggregate
	// over every execution ever.
	if err := c.db.NewRaw(`WITH RECURSIVE names AS (
			(SELECT job_name FROM batch_job_execution ORDER BY job_name LIMIT 1)
			UNION ALL
			SELECT (SELECT e.job_name FROM batch_job_execution e WHERE e.job_name > n.job_name ORDER BY e.job_name LIMIT 1)
			FROM names n WHERE n.job_name IS NOT NULL)
		SELECT n.job_name, (SELECT e.create_time FROM batch_job_execution e WHERE e.job_name = n.job_name
			ORDER BY e.job_execution_id DESC LIMIT 1) AS last
		FROM names n WHERE n.job_name IS NOT NULL`).Scan(ctx, &rows); err != nil {
		return []prometheus.Metric{prometheus.NewInvalidMetric(descMissed, err)}
	}
	last := map[string]time.Time{}
	var out []prometheus.Metric
	for _, r := range rows {
		last[r.Job] = r.Last
		out = append(out, prometheus.MustNewConstMetric(descLastLaunch, prometheus.GaugeValue, float64(r.Last.Unix()), r.Job))
	}
	for job, e := range reg {
		missed := 0.0
		// A tick before the cron was registered is no scheduler's to fire.
		if tick, err := LastTick(e.Cron, now.Add(-ScheduleGrace)); err == nil && tick.After(e.RegisteredAt) && last[job].Before(tick) {
			missed = 1
		}
		out = append(out, prometheus.MustNewConstMetric(descMissed, prometheus.GaugeValue, missed, job))
	}
	return out
}
