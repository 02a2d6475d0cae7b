package batch

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Spring Batch's observations (Micrometer's spring.batch.* meters, as
// Prometheus names them), so dashboards written for Spring Batch work:
//
//   - spring_batch_job_seconds{spring_batch_job_name, spring_batch_job_status}:
//     a job execution's duration, observed when it ends;
//   - spring_batch_job_launch_count_total{spring_batch_job_name};
//   - spring_batch_step_seconds{…job_name, spring_batch_step_name,
//     spring_batch_step_status}: a top-level step's duration at its end;
//   - spring_batch_item_read_seconds and spring_batch_item_process_seconds
//     {…job_name, …step_name, spring_batch_item_status}: per item (the
//     chunk's read or process time over its items, observed once per item);
//   - spring_batch_chunk_write_seconds{…job_name, …step_name,
//     spring_batch_chunk_status}: one chunk's write transaction.
//
// The active gauges (spring_batch_job_active, spring_batch_step_active)
// come from the job repository: RepositoryCollector. Labels never carry
// execution ids, so their number stays bounded by jobs × steps × statuses.
type springMetrics struct {
	job, step     *prometheus.HistogramVec
	launches      *prometheus.CounterVec
	read, process *prometheus.HistogramVec
	write         *prometheus.HistogramVec
}

const (
	springJob    = "spring_batch_job_name"
	springStep   = "spring_batch_step_name"
	springStatus = "SUCCESS" // an item or chunk that went through
)

func newSpringMetrics() springMetrics {
	long := prometheus.ExponentialBuckets(0.05, 2, 16) // 50 ms … ~27 min
	short := prometheus.ExponentialBuckets(0.00001, 4, 12)
	hist := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	}
	return springMetrics{
		job: hist("spring_batch_job_seconds", "Job execution duration, by job and final status.", long, springJob, "spring_batch_job_status"),
		step: hist("spring_batch_step_seconds", "Step execution duration, by job, step and final status.", long,
			springJob, springStep, "spring_batch_step_status"),
		launches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spring_batch_job_launch_count_total",
			Help: "Job launches, by job."}, []string{springJob}),
		read: hist("spring_batch_item_read_seconds", "Time to read one item (a chunk's read over its items).", short,
			springJob, springStep, "spring_batch_item_status"),
		process: hist("spring_batch_item_process_seconds", "Time to process one item (a chunk's processing over its items).", short,
			springJob, springStep, "spring_batch_item_status"),
		write: hist("spring_batch_chunk_write_seconds", "Time to write one chunk in its transaction.", prometheus.ExponentialBuckets(0.001, 2, 16),
			springJob, springStep, "spring_batch_chunk_status"),
	}
}

func (s springMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.job, s.step, s.launches, s.read, s.process, s.write}
}

// observeEach observes the per-item share of d once per item.
func observeEach(h prometheus.Observer, d time.Duration, items int64) {
	if items <= 0 {
		return
	}
	per := d.Seconds() / float64(items)
	for range items {
		h.Observe(per)
	}
}

// launched counts a launch of job.
func (m *Metrics) launched(job string) {
	if m == nil {
		return
	}
	m.spring.launches.WithLabelValues(job).Inc()
}

// ended records the duration of an ended job (step empty) or step.
func (m *Metrics) ended(job, step string, status Status, start, end *time.Time) {
	if m == nil || start == nil || end == nil {
		return
	}
	d := end.Sub(*start).Seconds()
	if step == "" {
		m.spring.job.WithLabelValues(job, status).Observe(d)
		return
	}
	m.spring.step.WithLabelValues(job, step, status).Observe(d)
}
