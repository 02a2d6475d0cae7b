package chaos

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
	"github.com/xuri/excelize/v2"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/migrations"
	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
)

// The soak: the whole system (api, 3 workers, 2 schedulers, Postgres,
// Redis) with work arriving all the time (bookings, grants through the API
// with and without Idempotency-Key, export requests, class notices) and
// every scheduled job on its cron, while a fault drawn at random hits it
// every SOAK_FAULT_EVERY. Then the faults stop, the fleet settles, and every
// effect is checked once. `make soak` runs SOAK_MINUTES (default 20) and
// writes chaos/soak.md; `make test` runs 2 minutes.

// soakOptions size a soak.
type soakOptions struct {
	minutes    float64
	faultEvery time.Duration
	seed       uint64
	report     bool // write chaos/soak.md
}

func soakOptionsFromEnv() soakOptions {
	o := soakOptions{minutes: 2, seed: uint64(time.Now().UnixNano()), report: os.Getenv("SOAK_REPORT") == "1"}
	if v, err := strconv.ParseFloat(os.Getenv("SOAK_MINUTES"), 64); err == nil && v > 0 {
		o.minutes = v
	}
	o.faultEvery = 30 * time.Second
	if o.minutes < 10 {
		o.faultEvery = 15 * time.Second // a short soak still draws every kind
	}
	if v, err := time.ParseDuration(os.Getenv("SOAK_FAULT_EVERY")); err == nil && v > 0 {
		o.faultEvery = v
	}
	if v, err := strconv.ParseUint(os.Getenv("SOAK_SEED"), 10, 64); err == nil {
		o.seed = v
	}
	return o
}

// soak is one soak's system and what it saw.
type soak struct {
	t          *testing.T
	o          soakOptions
	pg         *postgres
	rd         *redisServer
	bins       [3]string // worker, scheduler, api
	db         *bun.DB
	engine     *batch.Engine
	client     *asynq.Client
	files      string // the shared STORAGE_DIR
	hook       *soakHook
	apiURL     string
	mu         sync.Mutex
	api        *proc
	workers    []*proc
	schedulers []*proc
	seq        int
	start      time.Time
	counts     map[string]int // load and faults, by kind
	idem       map[string]int64
	faults     []string
	samples    []sample
	rng        *rand.Rand
}

// sample is one look at the fleet's footprint.
type sample struct {
	at              time.Duration
	apiRSS, workers int64 // kB; workers: the largest worker's
	conns           int
}

// soakHook is the notification webhook: it counts the deliveries it
// accepted by Idempotency-Key.
type soakHook struct {
	mu   sync.Mutex
	keys map[string]int
	srv  *httptest.Server
}

func newSoakHook(t *testing.T) *soakHook {
	h := &soakHook{keys: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // a receiver that takes its time
		h.mu.Lock()
		h.keys[r.Header.Get("Idempotency-Key")]++
		h.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// TestSoak runs the soak and checks every invariant at its end.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs real processes for minutes")
	}
	o := soakOptionsFromEnv()
	s := newSoak(t, o)
	t.Logf("soak: %.1f minutes, a fault every %s, seed %d", o.minutes, o.faultEvery, o.seed)
	s.startFleet()
	s.runLoadAndFaults(time.Duration(o.minutes * float64(time.Minute)))
	settled := s.settle()
	s.check(settled)
	if o.report {
		s.writeReport(settled)
	}
}

func newSoak(t *testing.T, o soakOptions) *soak {
	s := &soak{t: t, o: o, counts: map[string]int{}, idem: map[string]int64{}, rng: rand.New(rand.NewPCG(o.seed, 7))}
	s.bins[0], s.bins[1], s.bins[2] = buildBinaries(t)
	s.pg = startPostgres(t)
	s.rd = startRedis(t)
	s.files = t.TempDir()
	s.hook = newSoakHook(t)
	ctx := ctxFor(t)
	admin, err := database.Open(ctx, s.pg.URL("postgres"), database.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE soak"); err != nil {
		t.Fatal(err)
	}
	if s.db, err = database.Open(ctx, s.pg.URL("soak"), database.Options{MaxOpenConns: 8}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.db.Close() })
	if _, err := migrations.Up(ctx, s.db); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.Bulk(ctx, s.db, seed.BulkOptions{Users: 2_000, Bookings: 10_000, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Passes the soak books on never run out of uses, so every booking is
	// deducted; what each pass held, and had used, before is kept.
	for _, q := range []string{
		`UPDATE pass SET remaining_count = 100000 WHERE remaining_count IS NOT NULL`,
		`CREATE TABLE soak_before AS SELECT p.id, p.remaining_count,
			(SELECT count(*) FROM booking b WHERE b.pass_id = p.id AND b.used_pass) AS used FROM pass p`,
		`CREATE TABLE soak_pass AS SELECT id, user_id FROM pass WHERE status = 'PROGRESSED' AND (ended_at IS NULL OR ended_at > now() + interval '1 day')`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	opt, _ := asynq.ParseRedisURI(s.rd.URL())
	s.client = asynq.NewClient(opt)
	t.Cleanup(func() { s.client.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s.engine = batch.New(s.db, s.client, tasks.Registry(tasks.Deps{DB: s.db, Logger: quiet}), batch.Options{Logger: quiet})
	return s
}

// env is a process's environment: every scheduled job every minute, the
// webhook, one shared file store, the reconciler at test speed.
func (s *soak) env() []string {
	e := []string{
		"DATABASE_URL=" + s.pg.URL("soak"), "REDIS_URL=" + s.rd.URL(), "WORKER_CONCURRENCY=4",
		"LOG_FORMAT=text", "LOG_LEVEL=warn", "STORAGE_DIR=" + s.files, "METRICS_ADDR=",
		"RECONCILE_EVERY=1s", "RECONCILE_STALE_AFTER=10s", "NOTIFY_WEBHOOK_URL=" + s.hook.srv.URL,
	}
	for _, sc := range tasks.DefaultSchedule {
		cron := "* * * * *"
		if sc.Job == tasks.JobPurgeJobRepository || sc.Job == tasks.JobNotifyBeforeExpiry {
			cron = "off"
		}
		e = append(e, sc.EnvVar+"="+cron)
	}
	return e
}

func (s *soak) startProc(kind string) *proc {
	s.seq++
	bin := map[string]string{"worker": s.bins[0], "scheduler": s.bins[1], "api": s.bins[2]}[kind]
	env := s.env()
	if kind == "api" {
		port := freePort(s.t)
		s.apiURL = fmt.Sprintf("http://127.0.0.1:%d", port)
		env = append(env, "HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port), "ADMIN_TOKEN="+chaosAdminToken,
			"SESSION_SECRET=chaos-session-7d1e9b3c5a2f4e6d8b0a1c3e5f7a9b1d", "COOKIE_SECURE=false")
	}
	return startProc(s.t, fmt.Sprintf("%s-%d", kind, s.seq), bin, env)
}

func (s *soak) startFleet() {
	s.api = s.startProc("api")
	for i := 0; i < 3; i++ {
		s.workers = append(s.workers, s.startProc("worker"))
	}
	for i := 0; i < 2; i++ {
		s.schedulers = append(s.schedulers, s.startProc("scheduler"))
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(s.apiURL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatal("the api was not ready in 30 s")
		}
	}
	s.start = time.Now()
}

func (s *soak) count(kind string) {
	s.mu.Lock()
	s.counts[kind]++
	s.mu.Unlock()
}

// runLoadAndFaults sends work and draws faults for d.
func (s *soak) runLoadAndFaults(d time.Duration) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, loop := range []struct {
		every time.Duration
		fn    func()
	}{
		{200 * time.Millisecond, s.book},
		{3 * time.Second, s.grant},
		{20 * time.Second, s.requestExport},
		{5 * time.Second, s.sampleFootprint},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(loop.every)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					loop.fn()
				}
			}
		}()
	}
	faults := time.NewTicker(s.o.faultEvery)
	deadline := time.After(d)
	for done := false; !done; {
		select {
		case <-faults.C:
			s.fault()
		case <-deadline:
			done = true
		}
	}
	faults.Stop()
	close(stop)
	wg.Wait()
}

// book inserts a few bookings: classes that just ended (use-passes deducts
// them) and classes starting within ten minutes (notify-before-class).
func (s *soak) book() {
	ctx := ctxFor(s.t)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO booking (pass_id, user_id, status, attended, started_at, ended_at)
		SELECT p.id, p.user_id, v.status, random() < 0.7, v.at, v.at + interval '50 minutes'
		FROM (SELECT id, user_id FROM soak_pass ORDER BY random() LIMIT 4) p,
		LATERAL (VALUES ('COMPLETED', now() - interval '55 minutes' - random() * interval '5 minutes'),
			('READY', now() + interval '1 minute' + random() * interval '8 minutes')) v(status, at)`); err != nil {
		s.count("booking insert failed")
		return
	}
	s.count("bookings")
}

// grant posts an ad-hoc grant to five members; half carry an
// Idempotency-Key and are sent twice (a client retrying), which must grant
// once. A failed request with a key is retried with the same key.
func (s *soak) grant() {
	var users []int64
	ctx := ctxFor(s.t)
	if err := s.db.NewRaw("SELECT user_id FROM soak_pass ORDER BY random() LIMIT 5").Scan(ctx, &users); err != nil || len(users) == 0 {
		s.count("grant failed")
		return
	}
	var pkg int64
	if err := s.db.NewRaw("SELECT id FROM package WHERE count IS NOT NULL ORDER BY id LIMIT 1").Scan(ctx, &pkg); err != nil {
		s.count("grant failed")
		return
	}
	body, _ := json.Marshal(map[string]any{"user_ids": users, "package_id": pkg, "at": time.Now().Add(time.Duration(s.rand(30)) * time.Second).Format(time.RFC3339)})
	key := ""
	if s.rand(2) == 0 {
		key = fmt.Sprintf("soak-%d-%d", s.o.seed, time.Now().UnixNano())
	}
	for try := 0; try < 2; try++ {
		id, ok := s.postGrant(body, key)
		switch {
		case !ok && key != "":
			s.count("grant retried (same key)")
			try-- // the client does not know whether it landed: again
			time.Sleep(time.Second)
			if time.Since(s.start) > time.Duration(s.o.minutes*float64(time.Minute))+time.Minute {
				return
			}
			continue
		case !ok:
			s.count("grant failed")
			return
		case key == "":
			s.count("grants without key")
			return
		case try == 0:
			s.count("grants with key")
			s.mu.Lock()
			s.idem[key] = id
			s.mu.Unlock()
		default:
			s.mu.Lock()
			first := s.idem[key]
			s.mu.Unlock()
			if id != first {
				s.t.Errorf("Idempotency-Key %s granted bulk pass %d, then %d on its repeat", key, first, id)
			}
			s.count("grant repeats replayed")
		}
	}
}

func (s *soak) postGrant(body []byte, key string) (int64, bool) {
	req, _ := http.NewRequest("POST", s.apiURL+"/api/admin/grants", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+chaosAdminToken)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var out struct {
		ID int64 `json:"bulk_pass_id"`
	}
	if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&out) != nil || out.ID == 0 {
		return 0, false
	}
	return out.ID, true
}

// requestExport asks for a fresh export of the bookings, CSV or XLSX.
func (s *soak) requestExport() {
	format := []string{"csv", "xlsx"}[s.rand(2)]
	body := fmt.Sprintf(`{"kind":"bookings","format":%q,"force":true}`, format)
	req, _ := http.NewRequest("POST", s.apiURL+"/api/admin/exports", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+chaosAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		s.count("export request failed")
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		s.count("export request failed")
		return
	}
	s.count("exports requested")
}

func (s *soak) rand(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

// fault injects one fault drawn at random.
func (s *soak) fault() {
	kinds := []string{"worker SIGKILL", "worker SIGTERM", "worker SIGSTOP", "Redis restart", "Postgres restart", "scheduler SIGKILL"}
	kind := kinds[s.rand(len(kinds))]
	at := time.Since(s.start).Round(time.Second)
	s.mu.Lock()
	s.faults = append(s.faults, fmt.Sprintf("%s %s", at, kind))
	s.counts["fault: "+kind]++
	s.mu.Unlock()
	i := s.rand(len(s.workers))
	switch kind {
	case "worker SIGKILL":
		s.workers[i].kill()
		s.workers[i] = s.startProc("worker")
	case "worker SIGTERM":
		s.workers[i].stop(30 * time.Second)
		s.workers[i] = s.startProc("worker")
	case "worker SIGSTOP":
		w := s.workers[i]
		w.signal(syscall.SIGSTOP)
		time.AfterFunc(8*time.Second, func() { w.signal(syscall.SIGCONT) })
	case "Redis restart":
		s.rd.restart()
	case "Postgres restart":
		s.pg.restart()
	case "scheduler SIGKILL":
		j := s.rand(len(s.schedulers))
		s.schedulers[j].kill()
		s.schedulers[j] = s.startProc("scheduler")
	}
	s.t.Logf("fault at %s: %s", at, kind)
}

// sampleFootprint records the api's and the largest worker's RSS and the
// database's connections.
func (s *soak) sampleFootprint() {
	sm := sample{at: time.Since(s.start), apiRSS: rssKB(s.api)}
	for _, w := range s.workers {
		sm.workers = max(sm.workers, rssKB(w))
	}
	_ = s.db.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE datname = 'soak'").Scan(ctxFor(s.t), &sm.conns)
	s.mu.Lock()
	s.samples = append(s.samples, sm)
	s.mu.Unlock()
}

// rssKB is a process's resident set in kB, or 0.
func rssKB(p *proc) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// settle stops the faults' last effects and the cron, lets every running
// execution end (with the reconciler running here), then runs each
// business tick the cron may have missed, and returns the settle time.
func (s *soak) settle() time.Time {
	ctx := ctxFor(s.t)
	for _, w := range s.workers {
		w.signal(syscall.SIGCONT)
	}
	for _, sc := range s.schedulers {
		sc.stop(30 * time.Second)
	}
	opt, _ := asynq.ParseRedisURI(s.rd.URL())
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.engine.RunReconciler(rctx, batch.ReconcileOptions{Every: time.Second, StaleAfter: 10 * time.Second, Inspector: insp})
	s.waitQuiet(4 * time.Minute)
	at := time.Now().UTC().Truncate(time.Second)
	for tick := s.start.Truncate(time.Minute); !tick.After(at); tick = tick.Add(time.Minute) {
		s.launchAndWait(tasks.JobNotifyBeforeClass, tick)
	}
	s.launchAndWait(tasks.JobAddPasses, at)
	s.launchAndWait(tasks.JobUsePasses, at)
	s.waitQuiet(2 * time.Minute)
	return at
}

// waitQuiet waits until no execution runs and no export is in flight.
func (s *soak) waitQuiet(timeout time.Duration) {
	ctx := ctxFor(s.t)
	deadline := time.Now().Add(timeout)
	for {
		var running, exports int
		err := s.db.NewRaw(`SELECT (SELECT count(*) FROM batch_job_execution WHERE status IN ('STARTING', 'STARTED', 'STOPPING')),
			(SELECT count(*) FROM export WHERE status IN ('PENDING', 'RUNNING'))`).Scan(ctx, &running, &exports)
		if err == nil && running == 0 && exports == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.dumpLogs()
			s.t.Fatalf("the fleet did not settle in %s: %d executions running, %d exports in flight (%v)", timeout, running, exports, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// launchAndWait runs job at business time at (a tick already completed
// is left as it is) and requires it to complete.
func (s *soak) launchAndWait(job string, at time.Time) {
	ctx := ctxFor(s.t)
	je, err := s.engine.Launch(ctx, job, batch.Params{batch.ParamRunAt: {Value: at.UTC().Format(time.RFC3339), Identifying: true}})
	if err != nil {
		if errors.Is(err, batch.ErrAlreadyComplete) {
			return
		}
		var running *batch.AlreadyRunningError
		if !errors.As(err, &running) {
			s.t.Fatalf("launch %s at %s: %v", job, at, err)
		}
		je = &batch.JobExecution{JobExecutionID: running.JobExecutionID}
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var status, msg string
		if err := s.db.NewRaw("SELECT status, exit_message FROM batch_job_execution WHERE job_execution_id = ?", je.JobExecutionID).Scan(ctx, &status, &msg); err != nil {
			s.t.Fatal(err)
		}
		if !batch.Running(status) {
			if status != batch.StatusCompleted {
				s.t.Errorf("settling: %s at %s ended %s: %s", job, at.Format(time.RFC3339), status, msg)
			}
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("settling: %s at %s still %s after 2 minutes", job, at.Format(time.RFC3339), status)
		}
	}
}

func (s *soak) dumpLogs() {
	for _, p := range append(append([]*proc{s.api}, s.workers...), s.schedulers...) {
		b, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		s.t.Logf("--- %s (last lines)\n%s", p.name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}

// check verifies every effect once.
func (s *soak) check(at time.Time) {
	ctx := ctxFor(s.t)
	type check struct {
		what string
		sql  string
	}
	for _, c := range []check{
		{"bookings ended and not deducted", `SELECT count(*) FROM booking WHERE status = 'COMPLETED' AND NOT used_pass AND ended_at <= '` + at.Format(time.RFC3339) + `'`},
		{"passes whose uses do not match their deducted bookings", `SELECT count(*) FROM pass p JOIN soak_before b ON b.id = p.id
			WHERE p.remaining_count IS NOT NULL AND p.remaining_count <> b.remaining_count -
			((SELECT count(*) FROM booking k WHERE k.pass_id = p.id AND k.used_pass) - b.used)`},
		{"passes below zero", `SELECT count(*) FROM pass WHERE remaining_count < 0`},
		{"grants due and not applied once to each member", `SELECT count(*) FROM bulk_pass bp WHERE bp.started_at <= '` + at.Format(time.RFC3339) + `'
			AND (bp.status <> 'COMPLETED' OR (SELECT count(*) FROM pass p WHERE p.bulk_pass_id = bp.id) <>
				(SELECT count(*) FROM user_group_mapping m JOIN users u ON u.id = m.user_id WHERE m.user_group_id = bp.user_group_id AND u.status = 'ACTIVE'))`},
		{"class notices not sent", `SELECT count(*) FROM notification WHERE NOT sent`},
		// A booking a completed notify-before-class run could see (booked
		// before its create step began, starting in its window) has its notice.
		{"booked classes a notify run saw without their notice", `SELECT count(*) FROM booking b WHERE b.status = 'READY'
			AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.dedup_key = 'before-class:booking:' || b.id)
			AND EXISTS (SELECT 1 FROM batch_job_execution e
				JOIN batch_job_execution_params p ON p.job_execution_id = e.job_execution_id AND p.parameter_name = 'run.at'
				JOIN batch_step_execution c ON c.job_execution_id = e.job_execution_id AND c.step_name = 'create' AND c.parent_step_execution_id IS NULL
				WHERE e.job_name = 'notify-before-class' AND e.status = 'COMPLETED' AND c.start_time > b.created_at
				  AND b.started_at > p.parameter_value::timestamptz AND b.started_at <= p.parameter_value::timestamptz + interval '10 minutes')`},
		{"executions left running", `SELECT count(*) FROM batch_job_execution WHERE status IN ('STARTING', 'STARTED', 'STOPPING')`},
		{"step executions left running", `SELECT count(*) FROM batch_step_execution WHERE status IN ('STARTING', 'STARTED', 'STOPPING')`},
		{"exports not COMPLETED", `SELECT count(*) FROM export WHERE status <> 'COMPLETED'`},
	} {
		var n int
		if err := s.db.NewRaw(c.sql).Scan(ctx, &n); err != nil {
			s.t.Fatalf("%s: %v", c.what, err)
		}
		if n != 0 {
			s.t.Errorf("invariant: %d %s", n, c.what)
			s.explain(c.what)
		}
	}
	var failed []string
	_ = s.db.NewRaw(`SELECT job_name || ' ' || job_execution_id || ': ' || left(exit_message, 200) FROM batch_job_execution WHERE status NOT IN ('COMPLETED')`).Scan(ctx, &failed)
	for _, f := range failed {
		s.t.Errorf("an execution did not complete: %s", f)
	}
	s.checkDeliveries()
	s.checkExports()
	s.checkFootprint()
}

// explain logs what a failed invariant's rows look like.
func (s *soak) explain(what string) {
	ctx := ctxFor(s.t)
	var rows []string
	switch {
	case strings.Contains(what, "notice"):
		_ = s.db.NewRaw(`SELECT b.id || ' start ' || b.started_at || ' created ' || b.created_at FROM booking b WHERE b.status = 'READY'
			AND NOT EXISTS (SELECT 1 FROM notification n WHERE n.dedup_key = 'before-class:booking:' || b.id) AND b.started_at < now() + interval '20 minutes'
			ORDER BY b.started_at LIMIT 10`).Scan(ctx, &rows)
		var runs []string
		_ = s.db.NewRaw(`SELECT e.job_execution_id || ' ' || e.status || ' run.at ' || p.parameter_value || ' created ' || e.create_time
			FROM batch_job_execution e JOIN batch_job_execution_params p ON p.job_execution_id = e.job_execution_id AND p.parameter_name = 'run.at'
			WHERE e.job_name = 'notify-before-class' ORDER BY p.parameter_value`).Scan(ctx, &runs)
		rows = append(rows, runs...)
	}
	s.t.Logf("%s:\n%s", what, strings.Join(rows, "\n"))
}

// checkDeliveries: every notice marked sent reached the webhook, under its
// own key; a key delivered twice is counted (at-least-once after a fault).
func (s *soak) checkDeliveries() {
	var keys []string
	if err := s.db.NewRaw("SELECT uuid::text FROM notification WHERE sent").Scan(ctxFor(s.t), &keys); err != nil {
		s.t.Fatal(err)
	}
	s.hook.mu.Lock()
	defer s.hook.mu.Unlock()
	s.counts["notices delivered more than once"] += 0 // reported even when none
	for _, k := range keys {
		switch n := s.hook.keys[k]; {
		case n == 0:
			s.t.Errorf("notice %s is marked sent but the webhook never got it", k)
		case n > 1:
			s.counts["notices delivered more than once"]++
		}
	}
	s.counts["notices sent"] = len(keys)
}

// checkExports: every COMPLETED export's file holds exactly its rows.
func (s *soak) checkExports() {
	ctx := ctxFor(s.t)
	store, err := storage.NewLocal(s.files)
	if err != nil {
		s.t.Fatal(err)
	}
	var es []struct {
		ID      int64  `bun:"id"`
		Format  string `bun:"format"`
		Key     string `bun:"file_key"`
		Written int64  `bun:"written_rows"`
		Total   int64  `bun:"total_rows"`
	}
	if err := s.db.NewRaw("SELECT id, format, file_key, written_rows, total_rows FROM export WHERE status = 'COMPLETED'").Scan(ctx, &es); err != nil {
		s.t.Fatal(err)
	}
	for _, e := range es {
		f, err := store.Open(ctx, e.Key)
		if err != nil {
			s.t.Errorf("export %d: %v", e.ID, err)
			continue
		}
		body, _ := io.ReadAll(f)
		f.Close()
		rows := int64(-1)
		if e.Format == "csv" {
			recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
			if err == nil {
				rows = int64(len(recs) - 1)
			}
		} else if x, err := excelize.OpenReader(bytes.NewReader(body)); err == nil {
			rows = 0
			for _, sheet := range x.GetSheetList() {
				r, _ := x.GetRows(sheet)
				rows += int64(len(r) - 1)
			}
			x.Close()
		}
		if rows != e.Written || e.Written != e.Total || rows <= 0 {
			s.t.Errorf("export %d (%s): the file holds %d rows, the export records %d written of %d", e.ID, e.Format, rows, e.Written, e.Total)
		}
	}
	s.counts["exports completed and checked"] = len(es)
}

// checkFootprint: the api's memory and the database's connections stay
// flat: the last third of the run holds no more than the first third's
// peak and a margin.
func (s *soak) checkFootprint() {
	n := len(s.samples)
	if n < 6 {
		return
	}
	peak := func(ss []sample, f func(sample) int64) int64 {
		var m int64
		for _, x := range ss {
			m = max(m, f(x))
		}
		return m
	}
	first, last := s.samples[:n/3], s.samples[2*n/3:]
	rss := func(x sample) int64 { return x.apiRSS }
	conns := func(x sample) int64 { return int64(x.conns) }
	if a, b := peak(first, rss), peak(last, rss); b > a*3/2+30_000 {
		s.t.Errorf("api RSS grew from %d kB (first third's peak) to %d kB (last third's)", a, b)
	}
	if a, b := peak(first, conns), peak(last, conns); b > a*3/2+10 {
		s.t.Errorf("Postgres connections grew from %d (first third's peak) to %d (last third's)", a, b)
	}
}

// writeReport writes chaos/soak.md.
func (s *soak) writeReport(at time.Time) {
	ctx := ctxFor(s.t)
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak under faults\n\n`make soak` (`SOAK_MINUTES=%.0f`), %s, %d CPUs, seed %d. The whole system ran: the api, 3 workers and 2\n",
		s.o.minutes, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), s.o.seed)
	b.WriteString("schedulers (every scheduled job every minute; RECONCILE_STALE_AFTER 10 s), Postgres and Redis, with bookings every 200 ms,\n")
	b.WriteString("grants through the API every 3 s (half with an Idempotency-Key, sent twice), an export request every 20 s and class\n")
	fmt.Fprintf(&b, "notices to a webhook that answers in 20 ms; a fault drawn at random every %s. Then the faults stopped, the fleet\n", s.o.faultEvery)
	b.WriteString("settled, every missed business tick ran, and each invariant below was checked once (the run fails otherwise).\n\n")
	b.WriteString("| what | count |\n|---|---|\n")
	keys := make([]string, 0, len(s.counts))
	for k := range s.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "| %s | %d |\n", k, s.counts[k])
	}
	var jobs []struct {
		Job    string `bun:"job_name"`
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	_ = s.db.NewRaw("SELECT job_name, status, count(*) AS n FROM batch_job_execution GROUP BY 1, 2 ORDER BY 1, 2").Scan(ctx, &jobs)
	b.WriteString("\n| job | status | executions |\n|---|---|---|\n")
	for _, j := range jobs {
		fmt.Fprintf(&b, "| %s | %s | %d |\n", j.Job, j.Status, j.N)
	}
	b.WriteString("\nInvariants checked after the fleet settled: every ended booking deducted exactly once (each pass's uses = before −\n")
	b.WriteString("its deducted bookings), no pass below zero, every due grant applied once to each member and each Idempotency-Key\n")
	b.WriteString("granting one bulk pass, every booked class in a notified window with one notice, every notice sent and received by\n")
	b.WriteString("the webhook under its key, every COMPLETED export's file holding exactly its rows, no execution or step left\n")
	b.WriteString("running, every execution COMPLETED, and the api's memory and Postgres's connections flat.\n\n")
	if n := len(s.samples); n > 0 {
		first, lastS := s.samples[0], s.samples[n-1]
		var maxAPI, maxW int64
		var maxC int
		for _, x := range s.samples {
			maxAPI, maxW, maxC = max(maxAPI, x.apiRSS), max(maxW, x.workers), max(maxC, x.conns)
		}
		fmt.Fprintf(&b, "Footprint (%d samples, every 5 s): api RSS %d MB at the start, %d MB peak, %d MB at the end; the largest worker %d MB peak;\n",
			n, first.apiRSS/1024, maxAPI/1024, lastS.apiRSS/1024, maxW/1024)
		fmt.Fprintf(&b, "Postgres connections %d at the start, %d peak, %d at the end.\n\n", first.conns, maxC, lastS.conns)
	}
	b.WriteString("Faults, in order:\n\n")
	for _, f := range s.faults {
		fmt.Fprintf(&b, "- %s\n", f)
	}
	if err := os.WriteFile("soak.md", []byte(b.String()), 0o644); err != nil {
		s.t.Fatal(err)
	}
}
