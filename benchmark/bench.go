// Package benchmark is passbatch's performance record: it seeds a data set,
// then for each job measures the engine with 1, 2, 4… real worker
// processes against the physical limit (one set-based SQL statement making
// the same change to the same rows) and against the naive design (one asynq
// task per item), verifying after every run that the end state equals the
// set-based one. `ptctl bench` runs it; `make bench` starts the servers.
package benchmark

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/migrations"
	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/tasks"
)

// Options configure a run. Zero values take the defaults noted.
type Options struct {
	// DatabaseURL names the server; the bench works in its own database,
	// <name>_bench, made anew each run. RedisURL is used as given (its
	// database is flushed).
	DatabaseURL, RedisURL string
	// Users and Bookings size the data set. Default 100,000 and 1,000,000.
	Users, Bookings int
	// Workers are the worker-process counts to measure. Default 1, 2, 4.
	Workers []int
	// WorkerBin is the cmd/worker binary, APIBin the cmd/api binary, SelfBin
	// the ptctl binary (for the naive workers). Required.
	WorkerBin, APIBin, SelfBin string
	// NaiveSample bounds the items of a naive run. Default 20,000.
	NaiveSample int
	// Notices is the notify-before-class load. Default 100,000.
	Notices int
	// APISeconds is how long each load of an api route is measured
	// (after a second's warm-up). Default 8.
	APISeconds float64
	// APIExecutions is how many job executions are loaded into the
	// repository before the admin pages are. Default 100,000.
	APIExecutions int
	// Progress receives progress lines. Default os.Stderr.
	Progress io.Writer
	// Only, when not empty, names the scenarios to run (use-passes,
	// expire-passes, export, notify-before-class, fixed-cost, api); empty
	// runs all.
	Only []string
}

// Scenarios are the names Options.Only takes.
var Scenarios = []string{"use-passes", "expire-passes", "export", "notify-before-class", "fixed-cost", "api"}

// runs reports whether the scenario named name is to run.
func (o Options) runs(name string) bool { return len(o.Only) == 0 || slices.Contains(o.Only, name) }

// Result is one measured run.
type Result struct {
	Scenario    string  `json:"scenario"`
	Variant     string  `json:"variant"`
	Workers     int     `json:"workers"`
	Items       int64   `json:"items"`
	Seconds     float64 `json:"seconds"`
	ItemsPerSec float64 `json:"items_per_sec"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
	StateOK     bool    `json:"state_ok"`
	Note        string  `json:"note,omitempty"`
}

// Report is a whole run.
type Report struct {
	Machine map[string]string `json:"machine"`
	Seed    *seed.BulkResult  `json:"seed"`
	Results []Result          `json:"results"`
	Took    time.Duration     `json:"took"`
	// API is the api under the page load; Profiles the top statements per
	// job run (pg_stat_statements), when the extension is loaded.
	API *APIResult `json:"api"`
	// FixedCost is a small job's launch → end with an idle fleet.
	FixedCost *FixedCost             `json:"fixed_cost"`
	Profiles  map[string][]Statement `json:"profiles"`
	Settings  Options                `json:"-"`
}

type runner struct {
	o      Options
	db     *bun.DB
	dbURL  string
	client *asynq.Client
	engine *batch.Engine
	redis  asynq.RedisConnOpt
	runAt  time.Time
	seq    int
	log    func(format string, a ...any)
	// profiles collects pg_stat_statements per job run; statsOK says
	// whether the extension is there.
	profiles map[string][]Statement
	statsOK  bool
	// storageDir is the workers' STORAGE_DIR (export files), removed at the end.
	storageDir string
}

// Statement is one line of a pg_stat_statements profile.
type Statement struct {
	Calls   int64   `bun:"calls"`
	TotalMS float64 `bun:"total_ms"`
	MeanMS  float64 `bun:"mean_ms"`
	Rows    int64   `bun:"rows"`
	Query   string  `bun:"query"`
}

func (r *runner) resetStatements(ctx context.Context) {
	if r.statsOK {
		_, _ = r.db.ExecContext(ctx, "SELECT pg_stat_statements_reset()")
	}
}

func (r *runner) topStatements(ctx context.Context, key string) {
	if !r.statsOK {
		return
	}
	var top []Statement
	err := r.db.NewRaw(`SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms, rows,
			left(regexp_replace(query, '\s+', ' ', 'g'), 140) AS query
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC LIMIT 6`).Scan(ctx, &top)
	if err == nil {
		r.profiles[key] = top
	}
}

// runScenarios measures the scenarios Options.Only names (all by default)
// into rep.
func (r *runner) runScenarios(ctx context.Context, rep *Report) error {
	o := r.o
	for _, sc := range []scenario{usePasses(), expirePasses()} {
		if !o.runs(sc.name) {
			continue
		}
		res, err := r.scenario(ctx, sc)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		rep.Results = append(rep.Results, res...)
	}
	if o.runs("export") {
		res, err := r.exports(ctx)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		rep.Results = append(rep.Results, res...)
	}
	if o.runs("notify-before-class") {
		res, err := r.notices(ctx)
		if err != nil {
			return fmt.Errorf("notify-before-class: %w", err)
		}
		rep.Results = append(rep.Results, res)
	}
	if o.runs("fixed-cost") {
		r.log("fixed cost: use-passes over 100 bookings, one partition, an idle worker, 10 times")
		var err error
		if rep.FixedCost, err = r.fixedCost(ctx, 10); err != nil {
			return fmt.Errorf("fixed cost: %w", err)
		}
	}
	if o.APIBin != "" && o.runs("api") {
		r.log("api: %d job executions in the repository, then each route under each load", o.APIExecutions)
		var err error
		if rep.API, err = r.apiLoad(ctx); err != nil {
			return fmt.Errorf("api load: %w", err)
		}
	}
	return nil
}

// Run seeds the bench database and measures every scenario.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Users == 0 {
		o.Users = 100_000
	}
	if o.Bookings == 0 {
		o.Bookings = 1_000_000
	}
	if len(o.Workers) == 0 {
		o.Workers = []int{1, 2, 4}
	}
	if o.NaiveSample == 0 {
		o.NaiveSample = 20_000
	}
	if o.Notices == 0 {
		o.Notices = 100_000
	}
	if o.APISeconds == 0 {
		o.APISeconds = 8
	}
	if o.APIExecutions == 0 {
		o.APIExecutions = 100_000
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	start := time.Now()
	r := &runner{o: o, log: func(f string, a ...any) { fmt.Fprintf(o.Progress, "bench: "+f+"\n", a...) }}
	var err error
	if r.storageDir, err = os.MkdirTemp("", "passbatch-bench-storage-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(r.storageDir)
	if err := r.open(ctx); err != nil {
		return nil, err
	}
	defer r.close()
	rep := &Report{Machine: r.machine(ctx), Settings: o, Profiles: map[string][]Statement{}}
	r.profiles = rep.Profiles
	r.log("seeding %d users and %d bookings", o.Users, o.Bookings)
	rep.Seed, err = seed.Bulk(ctx, r.db, seed.BulkOptions{Users: o.Users, Bookings: o.Bookings, Now: r.runAt})
	if err != nil {
		return nil, err
	}
	if err := r.snapshot(ctx); err != nil {
		return nil, err
	}
	if err := r.runScenarios(ctx, rep); err != nil {
		return nil, err
	}
	rep.Took = time.Since(start)
	return rep, nil
}

func (r *runner) open(ctx context.Context) error {
	admin, err := database.Open(ctx, r.o.DatabaseURL, database.Options{MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer admin.Close()
	u, err := url.Parse(r.o.DatabaseURL)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(u.Path, "/") + "_bench"
	r.log("using database %s (made anew)", name)
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return err
	}
	u.Path = "/" + name
	r.dbURL = u.String()
	if r.db, err = database.Open(ctx, r.dbURL, database.Options{MaxOpenConns: 8}); err != nil {
		return err
	}
	if _, err := migrations.Up(ctx, r.db); err != nil {
		return err
	}
	_, err = r.db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	if err == nil {
		_, err = r.db.ExecContext(ctx, "SELECT pg_stat_statements_reset()")
	}
	r.statsOK = err == nil
	if !r.statsOK {
		r.log("pg_stat_statements is not loaded; no statement profiles (%v)", err)
	}
	if r.redis, err = asynq.ParseRedisURI(r.o.RedisURL); err != nil {
		return err
	}
	r.client = asynq.NewClient(r.redis)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.engine = batch.New(r.db, r.client, tasks.Registry(tasks.Deps{DB: r.db, Logger: quiet}), batch.Options{Logger: quiet})
	r.runAt = time.Now().UTC().Truncate(time.Second)
	return r.flushRedis(ctx)
}

func (r *runner) flushRedis(ctx context.Context) error {
	insp := asynq.NewInspector(r.redis)
	defer insp.Close()
	qs, _ := insp.Queues()
	for _, q := range qs {
		_, _ = insp.DeleteAllPendingTasks(q)
		_, _ = insp.DeleteAllRetryTasks(q)
		_, _ = insp.DeleteAllScheduledTasks(q)
		_, _ = insp.DeleteAllArchivedTasks(q)
		_, _ = insp.DeleteAllCompletedTasks(q)
	}
	return nil
}

func (r *runner) close() {
	if r.client != nil {
		r.client.Close()
	}
	if r.db != nil {
		r.db.Close()
	}
}

func (r *runner) machine(ctx context.Context) map[string]string {
	m := map[string]string{"cores": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m["memory"] = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	for _, s := range []string{"server_version", "shared_buffers", "max_connections", "synchronous_commit", "fsync", "work_mem"} {
		var v string
		if err := r.db.NewRaw("SELECT current_setting(?)", s).Scan(ctx, &v); err == nil {
			m["postgres "+s] = v
		}
	}
	return m
}

// snapshot keeps the seeded state of what the jobs change, to reset to.
func (r *runner) snapshot(ctx context.Context) error {
	for _, q := range []string{
		"CREATE TABLE bench_pass AS SELECT id, status, remaining_count, expired_at FROM pass",
		"CREATE TABLE bench_booking AS SELECT id FROM booking WHERE NOT used_pass",
		"CREATE UNIQUE INDEX ON bench_pass (id)", "CREATE UNIQUE INDEX ON bench_booking (id)",
	} {
		if _, err := r.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	return nil
}

func (r *runner) reset(ctx context.Context) error {
	for _, q := range []string{
		`UPDATE pass p SET status = s.status, remaining_count = s.remaining_count, expired_at = s.expired_at FROM bench_pass s
			WHERE p.id = s.id AND (p.status, p.remaining_count, p.expired_at) IS DISTINCT FROM (s.status, s.remaining_count, s.expired_at)`,
		"UPDATE booking b SET used_pass = false FROM bench_booking s WHERE b.id = s.id AND b.used_pass",
		"VACUUM ANALYZE pass", "VACUUM ANALYZE booking",
	} {
		if _, err := r.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("reset: %w", err)
		}
	}
	return r.flushRedis(ctx)
}

// fingerprint hashes the state the jobs change.
func (r *runner) fingerprint(ctx context.Context) (string, error) {
	var a, b string
	if err := r.db.NewRaw(`SELECT md5(string_agg(id || ':' || status || ':' || coalesce(remaining_count::text, '-') || ':' || coalesce(expired_at::text, '-'), ',' ORDER BY id)) FROM pass`).Scan(ctx, &a); err != nil {
		return "", err
	}
	if err := r.db.NewRaw(`SELECT coalesce(md5(string_agg(id::text, ',' ORDER BY id)), '') FROM booking WHERE used_pass`).Scan(ctx, &b); err != nil {
		return "", err
	}
	return a + "/" + b, nil
}

// scenario is one job measured three ways.
type scenario struct {
	name string
	// setBased makes the job's change in one statement (or transaction).
	setBased []string
	// items lists the ids the job works on, for the naive design.
	items     string
	naiveTask string
	// chunks cuts the work as the job does, for the chunked-SQL limit.
	chunks chunkPlan
}

func usePasses() scenario {
	return scenario{
		name: tasks.JobUsePasses,
		setBased: []string{`WITH b AS (SELECT id, pass_id FROM booking WHERE status = 'COMPLETED' AND NOT used_pass AND ended_at <= ?0),
			d AS (SELECT pass_id, count(*) AS n FROM b GROUP BY pass_id),
			p AS (UPDATE pass SET remaining_count = pass.remaining_count - d.n FROM d WHERE pass.id = d.pass_id AND pass.remaining_count IS NOT NULL)
			UPDATE booking SET used_pass = true FROM b WHERE booking.id = b.id`},
		items:     "SELECT id FROM booking WHERE status = 'COMPLETED' AND NOT used_pass AND ended_at <= ? ORDER BY id",
		naiveTask: TaskNaiveUse,
		chunks:    useChunks,
	}
}

func expirePasses() scenario {
	return scenario{
		name: tasks.JobExpirePasses,
		setBased: []string{
			"UPDATE pass SET status = 'EXPIRED', expired_at = ?0 WHERE status = 'PROGRESSED' AND (ended_at <= ?0 OR remaining_count = 0)",
			"UPDATE pass SET status = 'PROGRESSED' WHERE status = 'READY' AND started_at <= ?0",
		},
		items:     "SELECT id FROM pass WHERE (status = 'PROGRESSED' AND (ended_at <= ? OR remaining_count = 0)) OR (status = 'READY' AND started_at <= ?) ORDER BY id",
		naiveTask: TaskNaiveExpire,
		chunks:    expireChunks,
	}
}

func (r *runner) scenario(ctx context.Context, sc scenario) ([]Result, error) {
	// (b) the physical limit.
	base, err := r.setBased(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("set-based: %w", err)
	}
	out := []Result{*base}
	want, err := r.fingerprint(ctx)
	if err != nil {
		return nil, err
	}
	// (b') the same chunks in plain SQL, a session per core.
	chunked, err := r.measured(ctx, sc.name+", chunked SQL", want, func() (*Result, error) {
		res, err := r.chunkedSQL(ctx, sc)
		return &res, err
	})
	if err != nil {
		return nil, fmt.Errorf("chunked SQL: %w", err)
	}
	out = append(out, *chunked)
	// (a) the engine with worker processes.
	for _, w := range r.o.Workers {
		r.log("%s: job with %d worker process(es)", sc.name, w)
		res, err := r.measured(ctx, fmt.Sprintf("%s, job with %d worker(s)", sc.name, w), want, func() (*Result, error) {
			res, err := r.job(ctx, sc.name, w, batch.Params{})
			return &res, err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, *res)
	}
	// (c) one asynq task per item, on a sample.
	for _, w := range r.o.Workers {
		if err := r.reset(ctx); err != nil {
			return nil, err
		}
		r.log("%s: one task per item with %d worker process(es)", sc.name, w)
		res, err := r.naive(ctx, sc, w)
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, nil
}

// measured resets the data, runs run with its statements profiled under
// name, and says whether the end state is want.
func (r *runner) measured(ctx context.Context, name, want string, run func() (*Result, error)) (*Result, error) {
	if err := r.reset(ctx); err != nil {
		return nil, err
	}
	r.resetStatements(ctx)
	res, err := run()
	if err != nil {
		return nil, err
	}
	r.topStatements(ctx, name)
	got, err := r.fingerprint(ctx)
	if err != nil {
		return nil, err
	}
	res.StateOK = got == want
	return res, nil
}

// setBased runs the scenario's set-based statements in one transaction.
func (r *runner) setBased(ctx context.Context, sc scenario) (*Result, error) {
	if err := r.reset(ctx); err != nil {
		return nil, err
	}
	r.log("%s: set-based SQL", sc.name)
	r.resetStatements(ctx)
	start := time.Now()
	var items int64
	err := r.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for i, q := range sc.setBased {
			res, err := tx.NewRaw(q, r.runAt).Exec(ctx)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); i == 0 || sc.name == tasks.JobExpirePasses {
				items += n
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.topStatements(ctx, sc.name+", set-based SQL")
	base := &Result{Scenario: sc.name, Variant: "set-based SQL", Items: items, Seconds: time.Since(start).Seconds(), StateOK: true}
	base.ItemsPerSec = float64(items) / base.Seconds
	return base, nil
}

// startWorkers starts n processes of bin with args and returns them with a
// sampler of their peak RSS.
func (r *runner) startWorkers(n int, bin string, args ...string) (stop func() float64, err error) {
	var procs []*exec.Cmd
	for i := 0; i < n; i++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+r.dbURL, "REDIS_URL="+r.o.RedisURL, "LOG_LEVEL=warn", "LOG_FORMAT=text", "METRICS_ADDR=", "STORAGE_DIR="+r.storageDir)
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		procs = append(procs, cmd)
	}
	var mu sync.Mutex
	var peak int64
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, p := range procs {
					if kb := PeakRSSKB(p.Process.Pid); kb > 0 {
						mu.Lock()
						peak = max(peak, kb)
						mu.Unlock()
					}
				}
			}
		}
	}()
	time.Sleep(700 * time.Millisecond) // connect and start polling
	return func() float64 {
		for _, p := range procs {
			if kb := PeakRSSKB(p.Process.Pid); kb > 0 {
				mu.Lock()
				peak = max(peak, kb)
				mu.Unlock()
			}
		}
		close(done)
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			_ = p.Wait()
		}
		return float64(peak) / 1024
	}, nil
}

// PeakRSSKB reads VmHWM, the peak resident set in KiB, of a live process
// (0 when it cannot be read).
func PeakRSSKB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func (r *runner) job(ctx context.Context, name string, workers int, extra batch.Params) (Result, error) {
	stop, err := r.startWorkers(workers, r.o.WorkerBin)
	if err != nil {
		return Result{}, err
	}
	r.seq++
	p := batch.Params{batch.ParamRunAt: {Value: r.runAt.Format(time.RFC3339), Identifying: true},
		batch.ParamRunID: {Value: strconv.Itoa(r.seq), Identifying: true}}
	for k, v := range extra {
		p[k] = v
	}
	start := time.Now()
	je, err := r.engine.Launch(ctx, name, p)
	if err != nil {
		stop()
		return Result{}, err
	}
	d, err := r.waitJob(ctx, je.JobExecutionID)
	took := time.Since(start)
	peak := stop()
	if err != nil {
		return Result{}, err
	}
	if d.EndTime != nil { // create → end as the repository recorded it, not this loop's polling
		took = d.EndTime.Sub(d.CreateTime)
	}
	if d.Status != batch.StatusCompleted {
		return Result{}, fmt.Errorf("execution %d ended %s: %s", d.JobExecutionID, d.Status, d.ExitMessage)
	}
	items := d.WriteCount
	res := Result{Scenario: name, Variant: "passbatch job", Workers: workers, Items: items, Seconds: took.Seconds(),
		ItemsPerSec: float64(items) / took.Seconds(), PeakRSSMB: peak}
	return res, nil
}

func (r *runner) waitJob(ctx context.Context, id int64) (*batch.ExecutionDetail, error) {
	for {
		d, err := r.engine.Execution(ctx, id)
		if err != nil {
			return nil, err
		}
		if !batch.Running(d.Status) {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *runner) naive(ctx context.Context, sc scenario, workers int) (Result, error) {
	var ids []int64
	args := []any{r.runAt}
	if sc.naiveTask == TaskNaiveExpire {
		args = append(args, r.runAt)
	}
	if err := r.db.NewRaw(sc.items+" LIMIT ?", append(args, r.o.NaiveSample)...).Scan(ctx, &ids); err != nil {
		return Result{}, err
	}
	insp := asynq.NewInspector(r.redis)
	defer insp.Close()
	// Queue every task while the queue is paused, start the workers, then
	// time from the unpause: neither enqueueing nor start-up is counted.
	b0, _ := json.Marshal(naivePayload{})
	if _, err := r.client.EnqueueContext(ctx, asynq.NewTask("bench:noop", b0), asynq.Queue(naiveQueue), asynq.MaxRetry(0)); err != nil {
		return Result{}, err
	}
	if err := insp.PauseQueue(naiveQueue); err != nil {
		return Result{}, err
	}
	_, _ = insp.DeleteAllPendingTasks(naiveQueue)
	for _, id := range ids {
		b, _ := json.Marshal(naivePayload{ID: id, RunAt: r.runAt.Format(time.RFC3339)})
		if _, err := r.client.EnqueueContext(ctx, asynq.NewTask(sc.naiveTask, b), asynq.Queue(naiveQueue), asynq.MaxRetry(25)); err != nil {
			return Result{}, err
		}
	}
	stop, err := r.startWorkers(workers, r.o.SelfBin, "bench", "naive-worker")
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	if err := insp.UnpauseQueue(naiveQueue); err != nil {
		stop()
		return Result{}, err
	}
	for {
		q, err := insp.GetQueueInfo(naiveQueue)
		if err == nil && q.Pending == 0 && q.Active == 0 && q.Retry == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	peak := stop()
	res := Result{Scenario: sc.name, Variant: "one task per item", Workers: workers, Items: int64(len(ids)), Seconds: took.Seconds(),
		ItemsPerSec: float64(len(ids)) / took.Seconds(), PeakRSSMB: peak, Note: fmt.Sprintf("first %d items", len(ids))}
	// The sample's end state must equal what the set-based statement does to it.
	ok, err := r.naiveStateOK(ctx, sc, ids)
	if err != nil {
		return Result{}, err
	}
	res.StateOK = ok
	return res, nil
}

func (r *runner) naiveStateOK(ctx context.Context, sc scenario, ids []int64) (bool, error) {
	var bad int
	var err error
	switch sc.naiveTask {
	case TaskNaiveUse:
		err = r.db.NewRaw(`WITH s AS (SELECT unnest(?::bigint[]) AS id),
			d AS (SELECT b.pass_id, count(*) AS n FROM booking b JOIN s USING (id) GROUP BY 1)
			SELECT (SELECT count(*) FROM booking b JOIN s USING (id) WHERE NOT b.used_pass)
			     + (SELECT count(*) FROM pass p JOIN d ON d.pass_id = p.id JOIN bench_pass o ON o.id = p.id
			        WHERE p.remaining_count IS DISTINCT FROM o.remaining_count - d.n)`, pgdialect.Array(ids)).Scan(ctx, &bad)
	case TaskNaiveExpire:
		err = r.db.NewRaw(`SELECT count(*) FROM pass p JOIN bench_pass o USING (id) WHERE p.id = ANY(?::bigint[])
			AND NOT ((o.status = 'PROGRESSED' AND p.status = 'EXPIRED' AND p.expired_at = ?) OR (o.status = 'READY' AND p.status = 'PROGRESSED'))`,
			pgdialect.Array(ids), r.runAt).Scan(ctx, &bad)
	}
	return bad == 0, err
}

// notices measures notify-before-class over o.Notices bookings starting in
// the same minute: from the launch until the last notice is marked sent.
func (r *runner) notices(ctx context.Context) (Result, error) {
	at := r.runAt.Add(time.Hour).Truncate(time.Minute)
	r.log("notify-before-class: %d classes starting at the same minute", r.o.Notices)
	if _, err := r.db.ExecContext(ctx, `INSERT INTO booking (pass_id, user_id, status, started_at, ended_at)
		SELECT p.id, p.user_id, 'READY', ?, ? FROM pass p ORDER BY p.id LIMIT ?`, at.Add(5*time.Minute), at.Add(55*time.Minute), r.o.Notices); err != nil {
		return Result{}, err
	}
	if _, err := r.db.ExecContext(ctx, "ANALYZE booking"); err != nil {
		return Result{}, err
	}
	w := r.o.Workers[len(r.o.Workers)-1]
	res, err := r.job(ctx, tasks.JobNotifyBeforeClass, w, batch.Params{batch.ParamRunAt: {Value: at.Format(time.RFC3339), Identifying: true}})
	if err != nil {
		return Result{}, err
	}
	var sent int64
	if err := r.db.NewRaw("SELECT count(*) FROM notification WHERE sent").Scan(ctx, &sent); err != nil {
		return Result{}, err
	}
	res.Items = sent
	res.ItemsPerSec = float64(sent) / res.Seconds
	res.StateOK = sent >= int64(r.o.Notices)
	res.Note = "launch at the tick until the last notice is marked sent, log notifier"
	return res, nil
}
