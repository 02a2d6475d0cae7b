package chaos

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/migrations"
	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/tasks"
)

// Settings of the processes under test: the reconciler looks every second
// and re-drives an execution after 10 s without progress (so the Redis and
// outage scenarios end in seconds, not minutes); the rest are defaults.
const (
	reconcileEvery = time.Second
	staleAfter     = 10 * time.Second
	workers        = 3
	concurrency    = 4
)

// suite is one Postgres cluster and redis-server, a seeded gym as a
// template database, and the binaries.
type suite struct {
	t            *testing.T
	pg           *postgres
	rd           *redisServer
	worker, schd string
	api          string
	runAt        time.Time
	eligible     int64 // bookings use-passes must deduct
	full         bool
}

// run is one execution of use-passes over a fresh copy of the gym.
type run struct {
	s          *suite
	t          *testing.T
	name       string
	db         *bun.DB
	dbName     string
	engine     *batch.Engine
	client     *asynq.Client
	maxRetry   int
	workers    []*proc
	schedulers []*proc
	redisURL   string         // the processes' REDIS_URL
	sentinels  *sentinelGroup // set when the run's Redis is a Sentinel group
	api        *proc          // set when the run launches through an api process
	apiURL     string
	seq        int // processes started
	jeID       int64
	launched   time.Time
}

func newSuite(t *testing.T) *suite {
	s := &suite{t: t, full: os.Getenv("CHAOS_FULL") == "1"}
	bookings := 50_000
	if s.full {
		bookings = 200_000
	}
	if v, err := strconv.Atoi(os.Getenv("CHAOS_BOOKINGS")); err == nil && v > 0 {
		bookings = v
	}
	s.worker, s.schd, s.api = buildBinaries(t)
	s.pg = startPostgres(t)
	s.rd = startRedis(t)
	s.runAt = time.Now().UTC().Truncate(time.Second)
	ctx := ctxFor(t)
	admin := s.open("postgres")
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE gym"); err != nil {
		t.Fatal(err)
	}
	db := s.open("gym")
	if _, err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := seed.Bulk(ctx, db, seed.BulkOptions{Users: bookings / 10, Bookings: bookings, Now: s.runAt}); err != nil {
		t.Fatal(err)
	}
	// What use-passes must do, kept beside the data for the invariants.
	for _, q := range []string{
		"CREATE TABLE chaos_before AS SELECT id, remaining_count FROM pass",
		"CREATE TABLE chaos_eligible AS SELECT id, pass_id FROM booking WHERE status = 'COMPLETED' AND NOT used_pass AND ended_at <= '" + s.runAt.Format(time.RFC3339) + "'",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.NewRaw("SELECT count(*) FROM chaos_eligible").Scan(ctx, &s.eligible); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := admin.ExecContext(ctx, "ALTER DATABASE gym WITH is_template = true"); err != nil {
		t.Fatal(err)
	}
	t.Logf("gym seeded in %s: %d bookings, %d for use-passes to deduct", time.Since(start).Round(time.Millisecond), bookings, s.eligible)
	return s
}

func (s *suite) open(db string) *bun.DB {
	s.t.Helper()
	d, err := database.Open(ctxFor(s.t), s.pg.URL(db), database.Options{MaxOpenConns: 4})
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

// runOptions shape a run: schedulers (default 1) and workers (default 3)
// to start; maxRetry for the tasks (0: the default); sentinel runs Redis as
// a primary, a replica and three Sentinels, with an api process that
// launches the job.
type runOptions struct {
	schedulers, workers, maxRetry int
	sentinel                      bool
}

// newRun copies the gym, empties Redis and starts the processes.
func (s *suite) newRun(t *testing.T, name string, o runOptions) *run {
	t.Helper()
	ctx := ctxFor(t)
	r := &run{s: s, t: t, name: name, dbName: "run_" + strings.ReplaceAll(name, "-", "_"), maxRetry: o.maxRetry, redisURL: s.rd.URL()}
	if o.sentinel {
		r.sentinels = startSentinels(t)
		r.redisURL = r.sentinels.URL()
	}
	admin := s.open("postgres")
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+r.dbName+" TEMPLATE gym"); err != nil {
		t.Fatal(err)
	}
	r.db = s.open(r.dbName)
	t.Cleanup(func() { r.db.Close() })
	opt, err := asynq.ParseRedisURI(r.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.rd.port)})
	err = rc.FlushAll(ctx).Err()
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	r.client = asynq.NewClient(opt)
	t.Cleanup(func() { r.client.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.engine = batch.New(r.db, r.client, tasks.Registry(tasks.Deps{DB: r.db, Logger: quiet}), batch.Options{Logger: quiet, MaxRetry: o.maxRetry})
	for i := 0; i < cmp.Or(o.workers, workers); i++ {
		r.workers = append(r.workers, r.startWorker())
	}
	for i := 0; i < cmp.Or(o.schedulers, 1); i++ {
		r.schedulers = append(r.schedulers, r.start("scheduler", s.schd))
	}
	if o.sentinel {
		r.startAPI()
	}
	time.Sleep(time.Second) // connected, registered, polling
	return r
}

// env is the processes' environment.
func (r *run) env(name string) []string {
	e := []string{
		"DATABASE_URL=" + r.s.pg.URL(r.dbName),
		"REDIS_URL=" + r.redisURL, "WORKER_CONCURRENCY=" + strconv.Itoa(concurrency),
		"LOG_FORMAT=text", "LOG_LEVEL=" + cmp.Or(os.Getenv("CHAOS_LOG_LEVEL"), "warn"), "STORAGE_DIR=" + r.t.TempDir(), "METRICS_ADDR=",
		"RECONCILE_EVERY=" + reconcileEvery.String(), "RECONCILE_STALE_AFTER=" + staleAfter.String(),
	}
	if r.maxRetry > 0 {
		e = append(e, "TASK_MAX_RETRY="+strconv.Itoa(r.maxRetry))
	}
	for _, s := range tasks.DefaultSchedule {
		e = append(e, s.EnvVar+"=off") // only the job under test runs
	}
	return e
}

func (r *run) start(kind, bin string) *proc {
	r.seq++
	name := fmt.Sprintf("%s-%d", kind, r.seq)
	return startProc(r.t, name, bin, r.env(name))
}

func (r *run) startWorker() *proc { return r.start("worker", r.s.worker) }

// launch starts use-passes for the suite's business time, through the api
// when the run has one.
func (r *run) launch() {
	r.t.Helper()
	if r.api != nil {
		r.launchViaAPI()
		return
	}
	p := batch.Params{batch.ParamRunAt: {Value: r.s.runAt.Format(time.RFC3339), Identifying: true}}
	je, err := r.engine.Launch(ctxFor(r.t), tasks.JobUsePasses, p)
	if err != nil {
		r.t.Fatal(err)
	}
	r.jeID, r.launched = je.JobExecutionID, time.Now()
}

// written is how many bookings the partitions have deducted so far (-1
// while Postgres cannot be reached).
func (r *run) written() int64 {
	var n int64
	err := r.db.NewRaw(`SELECT coalesce(sum(write_count), 0) FROM batch_step_execution
		WHERE job_execution_id = ? AND parent_step_execution_id IS NOT NULL`, r.jeID).Scan(ctxFor(r.t), &n)
	if err != nil {
		return -1
	}
	return n
}

// waitProgress waits until share of the work is done, and fails if the job
// ends first (the fault would land on nothing).
func (r *run) waitProgress(share float64) {
	r.t.Helper()
	target := int64(share * float64(r.s.eligible))
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if r.written() >= target {
			if r.status() != batch.StatusStarted {
				r.t.Fatalf("the job ended before the fault (%s)", r.status())
			}
			return
		}
	}
	r.t.Fatalf("the job did not reach %.0f%% in 2 minutes", 100*share)
}

func (r *run) status() string {
	var s string
	_ = r.db.NewRaw("SELECT status FROM batch_job_execution WHERE job_execution_id = ?", r.jeID).Scan(ctxFor(r.t), &s)
	return s
}

// waitDone waits for the execution to end and returns when it did.
func (r *run) waitDone(timeout time.Duration) time.Time {
	r.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st := r.status(); st != "" && !batch.Running(st) {
			if st != batch.StatusCompleted {
				r.dumpLogs()
				r.t.Fatalf("%s: the job ended %s", r.name, st)
			}
			return time.Now()
		}
	}
	r.dumpLogs()
	r.t.Fatalf("%s: the job did not end within %s (%d of %d deducted)", r.name, timeout, r.written(), r.s.eligible)
	return time.Time{}
}

func (r *run) dumpLogs() {
	for _, p := range r.procs() {
		if b, err := os.ReadFile(p.log); err == nil {
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			r.t.Logf("--- %s (last lines)\n%s", p.name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	}
}

// requireInvariants checks the end state against what use-passes had to
// do: each eligible booking deducted once, each pass down by exactly its
// bookings (never below zero), the counters adding up, nothing running.
func (r *run) requireInvariants() {
	r.t.Helper()
	ctx := ctxFor(r.t)
	var c struct {
		NotUsed, Used, WrongPasses, Negative, Running  int64
		Read, Write, Filter, Skip, PartRead, PartWrite int64
	}
	err := r.db.NewRaw(`SELECT
		(SELECT count(*) FROM chaos_eligible e JOIN booking b USING (id) WHERE NOT b.used_pass) AS not_used,
		(SELECT count(*) FROM booking WHERE used_pass) AS used,
		(SELECT count(*) FROM pass p JOIN chaos_before o USING (id)
		   LEFT JOIN (SELECT pass_id, count(*) AS n FROM chaos_eligible GROUP BY pass_id) e ON e.pass_id = p.id
		   WHERE p.remaining_count IS DISTINCT FROM o.remaining_count - coalesce(e.n, 0)) AS wrong_passes,
		(SELECT count(*) FROM pass WHERE remaining_count < 0) AS negative,
		(SELECT count(*) FROM batch_step_execution WHERE job_execution_id = ?0 AND status IN ('STARTING','STARTED','STOPPING')) AS running,
		s.read_count AS read, s.write_count AS write, s.filter_count AS filter,
		s.read_skip_count + s.process_skip_count + s.write_skip_count AS skip,
		(SELECT sum(read_count) FROM batch_step_execution WHERE parent_step_execution_id = s.step_execution_id) AS part_read,
		(SELECT sum(write_count) FROM batch_step_execution WHERE parent_step_execution_id = s.step_execution_id) AS part_write
		FROM batch_step_execution s WHERE s.job_execution_id = ?0 AND s.step_name = 'deduct' AND s.parent_step_execution_id IS NULL`,
		r.jeID).Scan(ctx, &c)
	if err != nil {
		r.t.Fatal(err)
	}
	e := r.s.eligible
	// Seeded passes always have uses enough (a limited pass at 0 would make
	// use-passes skip), so there is no skip, nothing filtered.
	if c.NotUsed != 0 || c.Used != e || c.WrongPasses != 0 || c.Negative != 0 || c.Running != 0 ||
		c.Read != e || c.Write != e || c.Filter != 0 || c.Skip != 0 || c.PartRead != e || c.PartWrite != e {
		r.t.Fatalf("%s: invariants broken (want %d deducted once): %+v", r.name, e, c)
	}
}

// terminateWorkers cuts every worker's database connection.
func (r *run) terminateWorkers() int {
	r.t.Helper()
	var n int
	if err := r.db.NewRaw(`SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name IN (SELECT worker_id FROM batch_worker)) AS t`).Scan(ctxFor(r.t), &n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// inTransaction reports whether process p has a database session inside a
// transaction now.
func (r *run) inTransaction(p *proc) bool {
	var n int
	_ = r.db.NewRaw(`SELECT count(*) FROM pg_stat_activity a JOIN batch_worker w ON w.worker_id = a.application_name
		WHERE w.pid = ? AND a.xact_start IS NOT NULL`, p.cmd.Process.Pid).Scan(ctxFor(r.t), &n)
	return n > 0
}

// archived counts the archived tasks in Redis.
func (r *run) archived() (archived, waiting int) {
	opt, _ := asynq.ParseRedisURI(r.redisURL)
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	for _, q := range []string{batch.QueueControl, batch.QueuePartition} {
		if info, err := insp.GetQueueInfo(q); err == nil {
			archived += info.Archived
			waiting += info.Pending + info.Active + info.Retry + info.Scheduled
		}
	}
	return archived, waiting
}

// stopAll stops every process, SIGCONT first in case one is frozen.
func (r *run) stopAll() {
	for _, p := range r.procs() {
		p.signal(syscall.SIGCONT)
		p.stop(30 * time.Second)
	}
}

// procs are the run's processes.
func (r *run) procs() []*proc {
	ps := append(append([]*proc{}, r.workers...), r.schedulers...)
	if r.api != nil {
		ps = append(ps, r.api)
	}
	return ps
}

const chaosAdminToken = "chaos-admin-3f9c1a7e5b2d"

// startAPI starts an api process and waits until it is ready.
func (r *run) startAPI() {
	r.t.Helper()
	port := freePort(r.t)
	r.apiURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	r.seq++
	env := append(r.env("api"), "HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port), "ADMIN_TOKEN="+chaosAdminToken,
		"SESSION_SECRET=chaos-session-7d1e9b3c5a2f4e6d8b0a1c3e5f7a9b1d", "COOKIE_SECURE=false")
	r.api = startProc(r.t, fmt.Sprintf("api-%d", r.seq), r.s.api, env)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(r.apiURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	r.dumpLogs()
	r.t.Fatal("the api was not ready in 20 s")
}

// launchViaAPI launches use-passes with POST /api/admin/jobs/…/executions.
func (r *run) launchViaAPI() {
	r.t.Helper()
	body, _ := json.Marshal(map[string]any{"params": map[string]string{batch.ParamRunAt: r.s.runAt.Format(time.RFC3339)}})
	req, _ := http.NewRequest(http.MethodPost, r.apiURL+"/api/admin/jobs/"+tasks.JobUsePasses+"/executions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+chaosAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID int64 `json:"job_execution_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusAccepted || out.ID == 0 {
		r.t.Fatalf("launch through the api: %d %v %+v", resp.StatusCode, err, out)
	}
	r.jeID, r.launched = out.ID, time.Now()
}

// apiReady reports whether the api's /readyz answers 200.
func (r *run) apiReady() bool {
	resp, err := http.Get(r.apiURL + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// queues says how many tasks each batch queue holds, by state.
func (r *run) queues() string {
	opt, _ := asynq.ParseRedisURI(r.redisURL)
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	var out []string
	for _, q := range []string{batch.QueueControl, batch.QueuePartition} {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			out = append(out, q+": "+err.Error())
			continue
		}
		out = append(out, fmt.Sprintf("%s pending %d active %d retry %d scheduled %d archived %d", q, info.Pending, info.Active, info.Retry, info.Scheduled, info.Archived))
	}
	return strings.Join(out, "; ")
}
