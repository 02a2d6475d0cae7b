package batch

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"
)

// Metrics are the engine's Prometheus metrics, a prometheus.Collector. A
// nil *Metrics records nothing.
type Metrics struct {
	items      *prometheus.CounterVec
	chunks     *prometheus.HistogramVec
	executions *prometheus.CounterVec
	spring     springMetrics
}

// NewMetrics creates the engine's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "passbatch_items_total",
			Help: "Items handled by chunk steps, by job, step and kind (read, write, filter, skip).",
		}, []string{"job", "step", "kind"}),
		chunks: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "passbatch_chunk_duration_seconds",
			Help:    "Duration of one chunk transaction.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}, []string{"job", "step"}),
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "passbatch_job_transitions_total",
			Help: "Job execution status transitions seen by this process.",
		}, []string{"job", "status"}),
		spring: newSpringMetrics(),
	}
	reg.MustRegister(m)
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.items.Describe(ch)
	m.chunks.Describe(ch)
	m.executions.Describe(ch)
	for _, c := range m.spring.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.items.Collect(ch)
	m.chunks.Collect(ch)
	m.executions.Collect(ch)
	for _, c := range m.spring.collectors() {
		c.Collect(ch)
	}
}

func (m *Metrics) chunk(job, step string, o *chunk, d time.Duration) {
	if m == nil {
		return
	}
	m.items.WithLabelValues(job, step, "read").Add(float64(o.read))
	m.items.WithLabelValues(job, step, "write").Add(float64(o.written))
	m.items.WithLabelValues(job, step, "filter").Add(float64(o.filtered))
	m.items.WithLabelValues(job, step, "skip").Add(float64(o.processSkips + o.writeSkips))
	m.chunks.WithLabelValues(job, step).Observe(d.Seconds())
	observeEach(m.spring.read.WithLabelValues(job, step, springStatus), o.readTime, o.read)
	observeEach(m.spring.process.WithLabelValues(job, step, springStatus), o.processTime, o.read)
	m.spring.write.WithLabelValues(job, step, springStatus).Observe(o.writeTime.Seconds())
}

func (m *Metrics) execution(job string, status Status) {
	if m == nil {
		return
	}
	m.executions.WithLabelValues(job, status).Inc()
}

// RepositoryCollector reports what the job repository holds, read from
// Postgres at most every 15 s however often it is scraped:
//
//   - passbatch_job_executions{job,status}: executions created in the
//     last 24 hours, and every running one, by job and status (not every
//     execution ever: the count must stay cheap as the repository grows);
//   - passbatch_running_partitions{job,step,status}: the partitions of
//     running executions;
//   - passbatch_execution_idle_seconds{job}: for each job with a running
//     execution, the longest time one has recorded no progress while no
//     live worker runs a step of it;
//   - passbatch_redrive_limit_failures{job}: steps ended FAILED at the
//     re-drive limit in the last 24 hours (poison work);
//   - passbatch_workers{state} and passbatch_worker_slots: worker processes
//     with a heartbeat in the last 15 s, and their concurrency.
type RepositoryCollector struct {
	db *bun.DB

	mu      sync.Mutex
	at      time.Time
	metrics []prometheus.Metric
}

var (
	descExecutions = prometheus.NewDesc("passbatch_job_executions",
		"Job executions created in the last 24 hours, and every running one, by job and status.", []string{"job", "status"}, nil)
	descPartitions = prometheus.NewDesc("passbatch_running_partitions",
		"Partitions of running job executions by job, step and status.", []string{"job", "step", "status"}, nil)
	descIdle = prometheus.NewDesc("passbatch_execution_idle_seconds",
		"Seconds since a running execution of the job last recorded progress (the longest).", []string{"job"}, nil)
	descWorkers = prometheus.NewDesc("passbatch_workers",
		"Worker processes whose heartbeat is at most 15 s old, by state (RUNNING, DRAINING).", []string{"state"}, nil)
	descSlots = prometheus.NewDesc("passbatch_worker_slots",
		"Task slots (WORKER_CONCURRENCY summed) of the running workers with a fresh heartbeat.", nil, nil)
	descRedriveLimit = prometheus.NewDesc("passbatch_redrive_limit_failures",
		"Step executions that ended FAILED at the re-drive limit (poison work) in the last 24 hours, by job.", []string{"job"}, nil)
	descSpringJobActive = prometheus.NewDesc("spring_batch_job_active",
		"Running job executions, by job (Spring Batch's spring.batch.job.active).", []string{springJob}, nil)
	descSpringStepActive = prometheus.NewDesc("spring_batch_step_active",
		"Running top-level step executions, by job and step (spring.batch.step.active).", []string{springJob, springStep}, nil)
)

// repositoryTTL is how long one read of the repository is served again.
const repositoryTTL = 15 * time.Second

// NewRepositoryCollector returns a collector over db; register it once.
func NewRepositoryCollector(db *bun.DB) *RepositoryCollector { return &RepositoryCollector{db: db} }

// Describe implements prometheus.Collector.
func (c *RepositoryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descExecutions, descPartitions, descIdle, descWorkers, descSlots, descRedriveLimit, descSpringJobActive, descSpringStepActive} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *RepositoryCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > repositoryTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c.metrics, c.at = c.read(ctx), time.Now()
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

// labelled is one row of a grouped count.
type labelled struct {
	A string  `bun:"a"`
	B string  `bun:"b"`
	C string  `bun:"c"`
	N float64 `bun:"n"`
}

// repositoryQueries are the collector's reads: each returns rows whose
// leading labels (a, b, c) match its descriptor's.
var repositoryQueries = []struct {
	desc   *prometheus.Desc
	labels int
	sql    string
}{
	{descExecutions, 2, `SELECT e.job_name AS a, e.status AS b, count(*)::float8 AS n FROM batch_job_execution e
		WHERE e.create_time > now() - interval '24 hours' OR e.status IN ('STARTING', 'STARTED', 'STOPPING') GROUP BY 1, 2`},
	{descPartitions, 3, `SELECT i.job_name AS a, regexp_replace(s.step_name, ':partition[0-9]+$', '') AS b, s.status AS c, count(*)::float8 AS n FROM batch_job_execution e
		JOIN batch_job_instance i USING (job_instance_id) JOIN batch_step_execution s USING (job_execution_id)
		WHERE e.status IN ('STARTING', 'STARTED', 'STOPPING') AND s.parent_step_execution_id IS NOT NULL GROUP BY 1, 2, 3`},
	// An execution a live worker is running a step of (a long phase) is
	// not idle, however long since its rows moved.
	{descIdle, 1, `SELECT a, max(idle)::float8 AS n FROM (SELECT i.job_name AS a,
			CASE WHEN bool_or(w.worker_id IS NOT NULL) THEN 0
			ELSE extract(epoch FROM now() - greatest(e.last_updated, max(s.last_updated))) END AS idle
		FROM batch_job_execution e JOIN batch_job_instance i USING (job_instance_id)
		LEFT JOIN batch_step_execution s USING (job_execution_id)
		LEFT JOIN batch_worker w ON w.worker_id = s.worker_id AND s.status IN ('STARTING', 'STARTED')
			AND w.heartbeat_at > now() - interval '15 seconds' AND s.step_execution_id = ANY(w.held)
		WHERE e.status IN ('STARTING', 'STARTED', 'STOPPING') GROUP BY e.job_execution_id, i.job_name, e.last_updated) x GROUP BY a`},
	{descRedriveLimit, 1, `SELECT i.job_name AS a, count(*)::float8 AS n FROM batch_step_execution s
		JOIN batch_job_execution e USING (job_execution_id) JOIN batch_job_instance i USING (job_instance_id)
		WHERE s.status = 'FAILED' AND s.redrive_count > 0 AND s.end_time > now() - interval '24 hours'
		AND s.exit_message LIKE 're-drive limit reached%' GROUP BY 1`},
	{descWorkers, 1, `SELECT state AS a, count(*)::float8 AS n FROM batch_worker WHERE heartbeat_at > now() - interval '15 seconds' GROUP BY 1`},
	{descSlots, 0, `SELECT coalesce(sum(concurrency), 0)::float8 AS n FROM batch_worker
		WHERE state = 'RUNNING' AND heartbeat_at > now() - interval '15 seconds'`},
	{descSpringJobActive, 1, `SELECT i.job_name AS a, count(*)::float8 AS n FROM batch_job_execution e
		JOIN batch_job_instance i USING (job_instance_id) WHERE e.status IN ('STARTING', 'STARTED', 'STOPPING') GROUP BY 1`},
	{descSpringStepActive, 2, `SELECT i.job_name AS a, s.step_name AS b, count(*)::float8 AS n FROM batch_step_execution s
		JOIN batch_job_execution e USING (job_execution_id) JOIN batch_job_instance i USING (job_instance_id)
		WHERE e.status IN ('STARTING', 'STARTED', 'STOPPING') AND s.parent_step_execution_id IS NULL
		AND s.status IN ('STARTING', 'STARTED', 'STOPPING') GROUP BY 1, 2`},
}

// read runs every query once; a failed one yields an invalid metric.
func (c *RepositoryCollector) read(ctx context.Context) []prometheus.Metric {
	var out []prometheus.Metric
	for _, q := range repositoryQueries {
		var rows []labelled
		if err := c.db.NewRaw(q.sql).Scan(ctx, &rows); err != nil {
			out = append(out, prometheus.NewInvalidMetric(q.desc, err))
			continue
		}
		for _, r := range rows {
			labels := []string{r.A, r.B, r.C}[:q.labels]
			out = append(out, prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, r.N, labels...))
		}
	}
	return out
}
