package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/process"
)

// registerer keeps what is registered with it.
type registerer struct{ cs []prometheus.Collector }

func (r *registerer) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *registerer) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *registerer) Unregister(prometheus.Collector) bool    { return false }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// enqueueProbes puts n tasks of a type nobody handles into each of queues
// of the Redis at url.
func enqueueProbes(t *testing.T, url string, n int, queues []string, opts ...asynq.Option) {
	t.Helper()
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(opt)
	defer client.Close()
	for _, q := range queues {
		for i := 0; i < n; i++ {
			if _, err := client.Enqueue(asynq.NewTask("probe", nil), append([]asynq.Option{asynq.Queue(q)}, opts...)...); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// exported is every metric name a passbatch process serves: what
// process.Open registers in every process (the Go and process collectors,
// the engine's metrics) and what the api adds (process.RepositoryCollectors,
// over a Redis that has a queue, so asynq's collector describes itself).
func exported(t *testing.T) map[string]bool {
	t.Helper()
	db := testenv.NewDB(t)
	rd := testenv.NewRedis(t)
	enqueueProbes(t, rd.URL, 1, []string{batch.QueueControl, batch.QueuePartition}, asynq.ProcessIn(time.Hour))
	opt, _ := asynq.ParseRedisURI(rd.URL)
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	reg := &registerer{}
	reg.MustRegister(process.ProcessCollectors()...)
	batch.NewMetrics(reg)
	reg.MustRegister(process.RepositoryCollectors(db.DB, insp)...)
	names := map[string]bool{}
	for _, c := range reg.cs {
		ch := make(chan *prometheus.Desc, 256)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				names[m[1]] = true
			}
		}
	}
	for _, must := range []string{"passbatch_items_total", "passbatch_workers", "asynq_queue_latency_seconds", "process_resident_memory_bytes"} {
		if !names[must] {
			t.Fatalf("the exported names lack %s: %v", must, names)
		}
	}
	return names
}

var (
	promStrings = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promBraces  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges  = regexp.MustCompile(`\[[^\]]*\]`)
	promLists   = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promVars    = regexp.MustCompile(`\$\{?\w+\}?`)
	promIdent   = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promWords   = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"}
)

// metricNames returns the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, `""`)
	e = promBraces.ReplaceAllString(e, "")
	e = promRanges.ReplaceAllString(e, "")
	e = promLists.ReplaceAllString(e, "")
	e = promVars.ReplaceAllString(e, "")
	var out []string
	for _, m := range promIdent.FindAllString(e, -1) {
		if strings.HasSuffix(m, "(") || slices.Contains(promWords, strings.ToLower(m)) {
			continue // a function or a keyword
		}
		out = append(out, m)
	}
	return out
}

// known reports whether name is exported, a histogram's series included.
func known(names map[string]bool, name string) bool {
	if names[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && names[base] {
			return true
		}
	}
	return false
}

func TestMetricNamesFromPromQL(t *testing.T) {
	t.Parallel()
	got := metricNames(`histogram_quantile(0.95, sum by (le, job) (rate(passbatch_chunk_duration_seconds_bucket{job=~"$job"}[$__rate_interval]))) > on(job) group_left foo_total or time() - bar`)
	if want := []string{"passbatch_chunk_duration_seconds_bucket", "foo_total", "bar"}; !slices.Equal(got, want) {
		t.Fatalf("metricNames = %v, want %v", got, want)
	}
}

// TestDashboardAndAlerts: the Grafana dashboard and the alert rules parse,
// and every metric they query is one the processes export, so a renamed
// metric fails here instead of leaving an empty panel or a silent alert.
func TestDashboardAndAlerts(t *testing.T) {
	t.Parallel()
	names := exported(t)
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string                   `json:"title"`
			Type    string                   `json:"type"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	raw, err := os.ReadFile("grafana/passbatch.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana/passbatch.json: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) < 8 {
		t.Fatalf("dashboard %q has %d panels", dash.UID, len(dash.Panels))
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Title == "" || p.GridPos.W == 0 || len(p.Targets) == 0 {
			t.Errorf("panel %q: no title, size or query", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			exprs = append(exprs, strings.TrimSuffix(strings.TrimPrefix(v.Definition, "label_values("), ", job)"))
		}
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	raw, err = os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("prometheus/alerts.yml: %v", err)
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v lacks a name, an expression, a severity or a summary", r)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			alerts[r.Alert] = true
			exprs = append(exprs, r.Expr)
		}
	}
	for _, want := range []string{"PassbatchJobFailed", "PassbatchExecutionStalled", "PassbatchQueueLatencyHigh", "PassbatchNoWorker", "PassbatchScheduleMissed"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
	checked := 0
	for _, e := range exprs {
		for _, n := range metricNames(e) {
			checked++
			if !known(names, n) {
				t.Errorf("%q reads %s, which no passbatch process exports", e, n)
			}
		}
	}
	if checked < 15 {
		t.Fatalf("only %d metric references found: the parser is broken", checked)
	}
}

// TestPrometheusConfig: the scrape configuration loads the alert rules,
// keeps the pods that ask to be scraped on the port they name, and never
// uses the admin token.
func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName        string           `yaml:"job_name"`
			RelabelConfigs []map[string]any `yaml:"relabel_configs"`
			Authorization  map[string]any   `yaml:"authorization"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.RuleFiles, "alerts.yml") || len(cfg.ScrapeConfigs) == 0 {
		t.Fatalf("prometheus.yml: rule files %v, %d scrape configs", cfg.RuleFiles, len(cfg.ScrapeConfigs))
	}
	if !strings.Contains(string(raw), "__meta_kubernetes_pod_annotation_prometheus_io_scrape") || strings.Contains(string(raw), "ADMIN_TOKEN") {
		t.Fatal("prometheus.yml must keep the annotated pods and never use the admin token")
	}
}
