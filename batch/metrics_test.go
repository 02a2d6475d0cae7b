package batch_test

import (
	"testing"
	"time"

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
	if got["passbatch_job_executions{job=inc,status=STARTING}"] != 1 || got["passbatch_workers{state=RUNNING}"] != 0 {
		t.Fatalf("after the workers stopped: %v", got)
	}
}
