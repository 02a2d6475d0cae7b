package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/tasks"
)

// queryLog is a bun query hook that keeps every SELECT run while it is on.
type queryLog struct {
	mu   sync.Mutex
	on   bool
	seen []string
}

func (l *queryLog) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (l *queryLog) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := strings.TrimSpace(e.Query)
	if l.on && (strings.HasPrefix(q, "SELECT") || strings.HasPrefix(q, "WITH")) && !slices.Contains(l.seen, q) {
		l.seen = append(l.seen, q)
	}
}

// bigTables are the job repository's tables that grow with every run.
var bigTables = []string{"batch_job_instance", "batch_job_execution", "batch_job_execution_params", "batch_job_execution_context",
	"batch_step_execution", "batch_step_execution_context", "batch_skipped_item"}

// seqScans lists the sequential scans of big tables in an EXPLAIN (FORMAT
// JSON) plan.
func seqScans(plan any) []string {
	var out []string
	switch v := plan.(type) {
	case map[string]any:
		if v["Node Type"] == "Seq Scan" && slices.Contains(bigTables, fmt.Sprint(v["Relation Name"])) {
			out = append(out, fmt.Sprint(v["Relation Name"]))
		}
		for _, c := range v {
			out = append(out, seqScans(c)...)
		}
	case []any:
		for _, c := range v {
			out = append(out, seqScans(c)...)
		}
	}
	return out
}

// TestRepositoryAtScale loads a large job repository (set-based:
// REPOSITORY_TEST_EXECUTIONS, default 300,000; `make bench` and the
// closing figures use 1,000,000), then runs what operators and Prometheus
// read every few seconds: the jobs page, the executions list with each
// filter, an execution's page, the metrics collectors and the
// reconciler's passes. Every statement they run must read the big
// tables through an index (no sequential scan in its plan), or the page
// gets slower with every day the fleet runs. It logs the pages' p50/p99.
func TestRepositoryAtScale(t *testing.T) {
	t.Parallel()
	n := 300_000
	if v, err := strconv.Atoi(os.Getenv("REPOSITORY_TEST_EXECUTIONS")); err == nil && v > 0 {
		n = v
	}
	b := setup(t, false)
	ctx := context.Background()
	start := time.Now()
	if err := seed.Repository(ctx, b.db.DB, b.engine.Registry().Names(), n, time.Now()); err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %d executions in %s", n, time.Since(start).Round(time.Millisecond))
	var last int64
	if err := b.db.NewRaw("SELECT max(job_execution_id) FROM batch_job_execution").Scan(ctx, &last); err != nil {
		t.Fatal(err)
	}
	log := &queryLog{on: true}
	b.db.AddQueryHook(log)
	pages := []string{"/admin/jobs", "/api/admin/jobs", "/api/admin/executions", "/api/admin/executions?job=expire-passes",
		"/api/admin/executions?status=FAILED", "/api/admin/executions?from=2026-11-01&to=2026-11-02",
		"/api/admin/executions?job=export&status=COMPLETED", fmt.Sprintf("/api/admin/executions/%d", last), fmt.Sprintf("/admin/executions/%d", last)}
	for _, p := range pages {
		if st, _ := b.get(t, p); st != 200 {
			t.Fatalf("GET %s: %d", p, st)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(batch.NewRepositoryCollector(b.db.DB), tasks.NewScheduleCollector(b.db.DB))
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.engine.Failover(ctx, batch.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.engine.Reconcile(ctx, batch.ReconcileOptions{}); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	log.on = false
	queries := slices.Clone(log.seen)
	log.mu.Unlock()
	if len(queries) < 10 {
		t.Fatalf("only %d statements captured", len(queries))
	}
	for _, q := range queries {
		var raw []byte
		if err := b.db.NewRaw("EXPLAIN (FORMAT JSON) "+q).Scan(ctx, &raw); err != nil {
			t.Fatalf("explain %s: %v", q, err)
		}
		var plan any
		if err := json.Unmarshal(raw, &plan); err != nil {
			t.Fatal(err)
		}
		if scans := seqScans(plan); len(scans) > 0 {
			t.Errorf("a sequential scan of %v with %d executions in the repository:\n%s", scans, n, q)
		}
	}
	for _, p := range []string{"/admin/jobs", "/api/admin/executions"} {
		var took []time.Duration
		for i := 0; i < 40; i++ {
			t0 := time.Now()
			if st, _ := b.get(t, p); st != 200 {
				t.Fatalf("GET %s: %d", p, st)
			}
			took = append(took, time.Since(t0))
		}
		slices.Sort(took)
		t.Logf("GET %s with %d executions: p50 %s, p99 %s (%d requests, one at a time)", p, n,
			took[len(took)/2].Round(100*time.Microsecond), took[len(took)*99/100].Round(100*time.Microsecond), len(took))
	}
}

// get fetches path as the admin and returns its status and body.
func (b *bundle) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", b.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		k, err := resp.Body.Read(buf)
		sb.Write(buf[:k])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, sb.String()
}
