package batch_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
)

// otlpSpan is a received span with the pid of the process that sent it.
type otlpSpan struct {
	pid   string
	trace string
	name  string
	attrs map[string]string
}

// otlpReceiver is an in-process OTLP/HTTP trace receiver.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []otlpSpan
	url   string
}

func startReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var in collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.add(&in)
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	r.url = "http://" + ln.Addr().String()
	return r
}

func (r *otlpReceiver) add(in *collectortrace.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range in.GetResourceSpans() {
		pid := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "process.pid" {
				pid = strconv.FormatInt(a.GetValue().GetIntValue(), 10)
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, otlpSpan{pid: pid, trace: string(s.GetTraceId()), name: s.GetName(), attrs: attrs(s)})
			}
		}
	}
}

func attrs(s *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, a := range s.GetAttributes() {
		v := a.GetValue()
		if sv := v.GetStringValue(); sv != "" {
			m[a.GetKey()] = sv
		} else {
			m[a.GetKey()] = strconv.FormatInt(v.GetIntValue(), 10)
		}
	}
	return m
}

// TestOneTracePerExecution: with OTEL_EXPORTER_OTLP_ENDPOINT set, a job
// execution is one trace — the launch here, the job, step, partitions and
// chunks on two worker processes, and the SQL under them — received by an
// OTLP endpoint. Not parallel: it sets the process's tracer provider.
func TestOneTracePerExecution(t *testing.T) {
	recv := startReceiver(t)
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(recv.url+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond)))
	defer tp.Shutdown(ctx)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})

	const rows = 400
	b := setup(t, rows, testjob.IncJob("inc", testjob.Options{Partitions: 8, ChunkSize: 25}))
	env := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.url, "OTEL_BSP_SCHEDULE_DELAY=100", "WORKER_CONCURRENCY=2"}
	w1, w2 := b.startProc(t, "tw-a", env...), b.startProc(t, "tw-b", env...)
	time.Sleep(time.Second) // both polling before the partitions are queued
	id := b.launch(t, "inc", "run=1", "-sleep_ms=5")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
	for _, w := range []*workerProc{w1, w2} { // SIGTERM: they flush their spans as they exit
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		<-w.done
	}
	_ = tp.ForceFlush(ctx)

	recv.mu.Lock()
	defer recv.mu.Unlock()
	var traceID string
	for _, s := range recv.spans {
		if s.name == "batch.launch" && s.attrs["batch.job_execution_id"] == strconv.FormatInt(id, 10) {
			traceID = s.trace
		}
	}
	if traceID == "" {
		t.Fatalf("no batch.launch span for execution %d among %d spans", id, len(recv.spans))
	}
	names := map[string]int{}
	partitionPIDs := map[string]bool{}
	pids := map[string]bool{}
	for _, s := range recv.spans {
		if s.trace != traceID {
			continue
		}
		names[s.name]++
		pids[s.pid] = true
		if s.name == "batch.partition" {
			partitionPIDs[s.pid] = true
		}
	}
	if names["batch.job"] < 1 || names["batch.step"] < 1 || names["batch.partition"] < 8 || names["batch.chunk"] < 8 || names["batch.step-done"] < 1 {
		t.Fatalf("the execution's trace has spans %v; want the job, its step, 8 partitions with their chunks and the step-done", names)
	}
	read := 0
	for _, s := range recv.spans {
		if s.trace == traceID && s.name == "batch.chunk" {
			n, _ := strconv.Atoi(s.attrs["batch.read_count"])
			read += n
		}
	}
	if read != rows {
		t.Errorf("the chunk spans read %d items, want the %d rows", read, rows)
	}
	sql := 0
	for n, c := range names {
		if len(n) > 0 && (n[:min(len(n), 6)] == "SELECT" || n[:min(len(n), 6)] == "UPDATE" || n[:min(len(n), 6)] == "INSERT") {
			sql += c
		}
	}
	if sql == 0 {
		t.Errorf("no SQL spans in the trace: %v", names)
	}
	if len(partitionPIDs) < 2 {
		t.Fatalf("partition spans from %d process(es) %v, want both workers in one trace", len(partitionPIDs), partitionPIDs)
	}
	t.Logf("execution %d: one trace, %d spans from %d processes: %v", id, len(recv.spans), len(pids), names)
}

// TestRedriveJoinsTheTrace: an execution whose task was lost and that the
// reconciler re-drove is still one trace: the re-driven job, step and
// partition spans continue the launch's. Not parallel: it sets the
// process's tracer provider.
func TestRedriveJoinsTheTrace(t *testing.T) {
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem))
	defer tp.Shutdown(context.Background())
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	b := setup(t, 200, testjob.IncJob("inc", testjob.Options{Partitions: 4, ChunkSize: 50}))
	id := b.launch(t, "inc", "run=1")
	var tc *string
	if err := b.db.NewRaw("SELECT trace_context FROM batch_job_execution WHERE job_execution_id = ?", id).Scan(context.Background(), &tc); err != nil || tc == nil {
		t.Fatalf("the execution keeps no trace context (%v)", err)
	}
	if err := b.redis.Client.FlushDB(context.Background()).Err(); err != nil { // the job task is lost
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if n, err := b.engine.Reconcile(context.Background(), batch.ReconcileOptions{StaleAfter: time.Millisecond}); err != nil || n != 1 {
		t.Fatalf("reconcile: %d re-driven, %v", n, err)
	}
	defer b.startWorkers(t, 1, 4)()
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	var launch string
	traces := map[string]map[string]int{}
	for _, s := range mem.GetSpans() {
		tid := s.SpanContext.TraceID().String()
		if s.Name == "batch.launch" {
			launch = tid
		}
		if traces[tid] == nil {
			traces[tid] = map[string]int{}
		}
		traces[tid][s.Name]++
	}
	got := traces[launch]
	if launch == "" || got["batch.job"] < 1 || got["batch.partition"] < 4 || got["batch.step-done"] < 1 {
		t.Fatalf("the launch's trace has %v; spans by trace: %v", got, traces)
	}
	for tid, names := range traces {
		if tid != launch && (names["batch.job"] > 0 || names["batch.partition"] > 0) {
			t.Fatalf("re-driven work started trace %s of its own: %v", tid, names)
		}
	}
}
