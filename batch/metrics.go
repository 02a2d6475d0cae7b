package batch

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"
)

// Metrics are the engine's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	items      *prometheus.CounterVec
	chunks     *prometheus.HistogramVec
	executions *prometheus.CounterVec
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
	}
	reg.MustRegister(m.items, m.chunks, m.executions)
	return m
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
}

func (m *Metrics) execution(job string, status Status) {
	if m == nil {
		return
	}
	m.executions.WithLabelValues(job, status).Inc()
}

// ExecutionsCollector reports the job repository's executions by job and
// status (passbatch_job_executions), read from Postgres at most every 15 s
// however often it is scraped.
type ExecutionsCollector struct {
	db   *bun.DB
	desc *prometheus.Desc

	mu   sync.Mutex
	at   time.Time
	rows []executionCount
}

type executionCount struct {
	Job    string `bun:"job_name"`
	Status string `bun:"status"`
	N      int64  `bun:"n"`
}

// executionsTTL is how long a count of the executions is served again.
const executionsTTL = 15 * time.Second

// NewExecutionsCollector returns a collector over db; register it once.
func NewExecutionsCollector(db *bun.DB) *ExecutionsCollector {
	return &ExecutionsCollector{db: db, desc: prometheus.NewDesc("passbatch_job_executions",
		"Job executions in the repository by job and status.", []string{"job", "status"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *ExecutionsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *ExecutionsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > executionsTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var rows []executionCount
		err := c.db.NewRaw(`SELECT i.job_name, e.status, count(*) AS n FROM batch_job_execution e
			JOIN batch_job_instance i USING (job_instance_id) GROUP BY 1, 2`).Scan(ctx, &rows)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.desc, err)
			return
		}
		c.rows, c.at = rows, time.Now()
	}
	for _, r := range c.rows {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(r.N), r.Job, r.Status)
	}
}
