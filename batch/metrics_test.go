package batch_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
)

// gather collects c once and returns each sample's value by
// "name{label=value,…}" (labels in their declared order).
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %+v", err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			out[key+"}"] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

// TestRepositoryCollector: executions by status, live workers and their
// slots, and how long a running execution has been idle, from Postgres.
func TestRepositoryCollector(t *testing.T) {
	t.Parallel()
	b := setup(t, 500, testjob.IncJob("inc", testjob.Options{Partitions: 4, ChunkSize: 50}))
	stop := b.startWorkers(t, 2, 3)
	id := b.launch(t, "inc", "run=1")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	got := gather(t, batch.NewRepositoryCollector(b.db.DB))
	if got["passbatch_job_executions{job=inc,status=COMPLETED}"] != 1 || got["passbatch_workers{state=RUNNING}"] != 2 || got["passbatch_worker_slots{}"] != 6 {
		t.Fatalf("after one run with 2 workers × 3 slots: %v", got)
	}
	stop()
	b.launch(t, "inc", "run=2") // nobody runs it
	time.Sleep(1100 * time.Millisecond)
	got = gather(t, batch.NewRepositoryCollector(b.db.DB))
	if idle := got["passbatch_execution_idle_seconds{job=inc}"]; idle < 1 || idle > 60 {
		t.Fatalf("a STARTING execution nobody runs: idle %v s, want about 1 (%v)", idle, got)
	}
	if got["passbatch_job_executions{job=inc,status=STARTING}"] != 1 || got["passbatch_workers{state=RUNNING}"] != 0 ||
		got["spring_batch_job_active{spring_batch_job_name=inc}"] != 1 {
		t.Fatalf("after the workers stopped: %v", got)
	}
}

// TestSpringBatchMetrics: a run records Spring Batch's meters under their
// Prometheus names, labelled by job, step and status.
func TestSpringBatchMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, 300, testjob.IncJob("inc", testjob.Options{Partitions: 3, ChunkSize: 50}))
	reg := prometheus.NewPedanticRegistry()
	eng := batch.New(b.db.DB, b.client, b.engine.Registry(), batch.Options{Logger: quietLogger(), Metrics: batch.NewMetrics(reg)})
	opt, _ := asynq.ParseRedisURI(b.redis.URL)
	w := eng.NewWorker(opt, batch.WorkerOptions{Concurrency: 3, Logger: quietLogger(), ShutdownTimeout: 5 * time.Second})
	if err := w.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	defer w.Stop(context.Background())
	je, err := eng.Launch(context.Background(), "inc", batch.Params{"run": {Value: "1", Identifying: true}})
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, je.JobExecutionID, time.Minute), batch.StatusCompleted)
	counts := map[string]uint64{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName() + "{"
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			key += "}"
			switch {
			case m.Histogram != nil:
				counts[key] = m.Histogram.GetSampleCount()
			case m.Counter != nil:
				counts[key] = uint64(m.Counter.GetValue())
			}
		}
	}
	want := map[string]uint64{
		"spring_batch_job_launch_count_total{spring_batch_job_name=inc,}":                                                           1,
		"spring_batch_job_seconds{spring_batch_job_name=inc,spring_batch_job_status=COMPLETED,}":                                    1,
		"spring_batch_step_seconds{spring_batch_job_name=inc,spring_batch_step_name=inc,spring_batch_step_status=COMPLETED,}":       1,
		"spring_batch_item_read_seconds{spring_batch_item_status=SUCCESS,spring_batch_job_name=inc,spring_batch_step_name=inc,}":    300,
		"spring_batch_item_process_seconds{spring_batch_item_status=SUCCESS,spring_batch_job_name=inc,spring_batch_step_name=inc,}": 300,
		// 3 partitions of 100 items, 50 a chunk: 2 full chunks and 1 empty last one each.
		"spring_batch_chunk_write_seconds{spring_batch_chunk_status=SUCCESS,spring_batch_job_name=inc,spring_batch_step_name=inc,}": 9,
	}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s = %d, want %d", k, counts[k], v)
		}
	}
	if t.Failed() {
		t.Logf("gathered: %v", counts)
	}
}
