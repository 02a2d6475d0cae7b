package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/notify"
	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/tasks"
)

func TestExpirePasses(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.base(t)
	at := runAt
	type pass struct {
		id               int
		status           string
		remaining        any
		started, ended   any
		wantStatus       string
		wantExpiredAtRun bool
	}
	cases := []pass{
		{1, "PROGRESSED", 3, at.Add(-time.Hour), at, "EXPIRED", true},                          // ended_at == run.at
		{2, "PROGRESSED", 3, at.Add(-time.Hour), at.Add(time.Second), "PROGRESSED", false},     // ends a second later
		{3, "PROGRESSED", 0, at.Add(-time.Hour), at.Add(time.Hour), "EXPIRED", true},           // no uses left
		{4, "PROGRESSED", nil, at.Add(-time.Hour), nil, "PROGRESSED", false},                   // unlimited
		{5, "READY", 3, at, at.Add(time.Hour), "PROGRESSED", false},                            // starts exactly now
		{6, "READY", 3, at.Add(time.Second), at.Add(time.Hour), "READY", false},                // starts later
		{7, "PROGRESSED", 1, at.Add(-48 * time.Hour), at.Add(-time.Hour), "EXPIRED", true},     // ended before
		{8, "PROGRESSED", nil, at.Add(-48 * time.Hour), at.Add(-time.Minute), "EXPIRED", true}, // unlimited uses, but ended
	}
	for _, c := range cases {
		b.exec(t, "INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at, ended_at) VALUES (?, 1, 1, ?, ?, ?, ?)",
			c.id, c.status, c.remaining, c.started, c.ended)
	}
	b.exec(t, "INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at, ended_at, expired_at) VALUES (9, 1, 1, 'EXPIRED', 0, ?, ?, ?)",
		at.Add(-96*time.Hour), at.Add(-48*time.Hour), at.Add(-48*time.Hour))
	requireCompleted(t, b.run(t, tasks.JobExpirePasses, at))
	check := func(when string) {
		for _, c := range cases {
			var got struct {
				Status    string     `bun:"status"`
				ExpiredAt *time.Time `bun:"expired_at"`
			}
			if err := b.db.NewRaw("SELECT status, expired_at FROM pass WHERE id = ?", c.id).Scan(context.Background(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != c.wantStatus || (c.wantExpiredAtRun && (got.ExpiredAt == nil || !got.ExpiredAt.Equal(at))) {
				t.Errorf("%s: pass %d: %s expired_at %v, want %s (expired_at = run.at: %v)", when, c.id, got.Status, got.ExpiredAt, c.wantStatus, c.wantExpiredAtRun)
			}
		}
	}
	check("first run")
	// The same run.at again is refused; a later one changes nothing already done.
	p := batch.Params{batch.ParamRunAt: {Value: at.Format(time.RFC3339), Identifying: true}}
	if _, err := b.engine.Launch(context.Background(), tasks.JobExpirePasses, p); !errors.Is(err, batch.ErrAlreadyComplete) {
		t.Fatalf("relaunch with the same run.at: %v, want ErrAlreadyComplete", err)
	}
	requireCompleted(t, b.run(t, tasks.JobExpirePasses, at.Add(-time.Second)))
	check("earlier run.at")
}

func TestUsePasses(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.base(t)
	at := runAt
	b.exec(t, `INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at) VALUES
		(1, 1, 1, 'PROGRESSED', 5, ?), (2, 1, 2, 'PROGRESSED', 0, ?), (3, 2, 3, 'PROGRESSED', NULL, ?), (4, 1, 1, 'PROGRESSED', 1, ?)`,
		at.Add(-48*time.Hour), at.Add(-48*time.Hour), at.Add(-48*time.Hour), at.Add(-48*time.Hour))
	book := func(id, pass, user int, status string, end time.Time) {
		b.exec(t, "INSERT INTO booking (id, pass_id, user_id, status, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?)",
			id, pass, user, status, end.Add(-50*time.Minute), end)
	}
	book(1, 1, 1, "COMPLETED", at.Add(-time.Hour))
	book(2, 1, 1, "COMPLETED", at.Add(-2*time.Hour))
	book(3, 1, 1, "COMPLETED", at) // ended exactly at run.at: deducted
	book(4, 1, 1, "CANCELLED", at.Add(-time.Hour))
	book(5, 1, 1, "COMPLETED", at.Add(time.Second)) // not yet ended
	book(6, 2, 2, "COMPLETED", at.Add(-time.Hour))  // pass has 0 left: skipped
	book(7, 3, 3, "COMPLETED", at.Add(-time.Hour))  // unlimited
	book(8, 4, 1, "COMPLETED", at.Add(-time.Hour))  // pass 4 has 1 left, two bookings: one skipped
	book(9, 4, 1, "COMPLETED", at.Add(-time.Hour))
	je := b.run(t, tasks.JobUsePasses, at)
	requireCompleted(t, je)
	check := func(pass1 int, used1, used2 string) {
		t.Helper()
		want := map[int]any{1: pass1, 2: 0, 4: 0}
		for id, w := range want {
			if got := scan[int](t, b.db, "SELECT remaining_count FROM pass WHERE id = ?", id); got != w {
				t.Errorf("pass %d remaining %d, want %v", id, got, w)
			}
		}
		if got := scan[*int](t, b.db, "SELECT remaining_count FROM pass WHERE id = 3"); got != nil {
			t.Errorf("unlimited pass got a count %d", *got)
		}
		used := scan[string](t, b.db, "SELECT string_agg(id::text, ',' ORDER BY id) FROM booking WHERE used_pass")
		if used != used1 && used != used2 {
			t.Errorf("used bookings %s, want %s or %s", used, used1, used2)
		}
	}
	check(2, "1,2,3,7,8", "1,2,3,7,9")
	skipped := scan[[]string](t, b.db, "SELECT item_key || ':' || phase || ':' || error FROM batch_skipped_item ORDER BY item_key")
	if len(skipped) != 2 || !strings.HasPrefix(skipped[0], "6:write:") || !strings.Contains(skipped[0], "no uses left") {
		t.Fatalf("skipped %v, want booking 6 and one of 8/9 skipped in write with 'no uses left'", skipped)
	}
	requireCompleted(t, b.run(t, tasks.JobUsePasses, at.Add(time.Hour)))
	// A later run deducts nothing twice; booking 5 has ended by then.
	check(1, "1,2,3,5,7,8", "1,2,3,5,7,9")
	if got := scan[int](t, b.db, "SELECT count(*) FROM pass WHERE remaining_count < 0"); got != 0 {
		t.Fatalf("%d passes below zero", got)
	}
}

func TestAddPassesAndGrantTask(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.base(t)
	at := runAt
	b.exec(t, `UPDATE users SET status = 'INACTIVE' WHERE id = 3;
		INSERT INTO user_group (id, name) VALUES (1, 'g'), (2, 'h');
		INSERT INTO user_group_mapping (user_group_id, user_id) VALUES (1, 1), (1, 2), (1, 3), (2, 1);`)
	b.exec(t, `INSERT INTO bulk_pass (id, package_id, user_group_id, count, started_at, ended_at) VALUES
		(1, 1, 1, NULL, ?, NULL), (2, 1, 2, 4, ?, ?)`, at, at.Add(time.Minute), at.Add(24*time.Hour))
	requireCompleted(t, b.run(t, tasks.JobAddPasses, at))
	if got := scan[string](t, b.db, "SELECT string_agg(user_id || ':' || remaining_count || ':' || (ended_at - started_at), ',' ORDER BY user_id) FROM pass WHERE bulk_pass_id = 1"); got != "1:10:60 days,2:10:60 days" {
		t.Fatalf("bulk pass 1 granted %q, want users 1 and 2 (3 is inactive) with the package's 10 uses over 60 days", got)
	}
	if got := scan[string](t, b.db, "SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM bulk_pass"); got != "1:COMPLETED,2:READY" {
		t.Fatalf("bulk passes %s", got)
	}
	// A rerun, and a duplicate grant row, grant nothing twice.
	b.exec(t, "UPDATE bulk_pass SET status = 'READY' WHERE id = 1")
	requireCompleted(t, b.run(t, tasks.JobAddPasses, at.Add(time.Second)))
	if got := scan[int](t, b.db, "SELECT count(*) FROM pass WHERE bulk_pass_id = 1"); got != 2 {
		t.Fatalf("%d passes for bulk pass 1 after a rerun, want 2", got)
	}
	// The grant task for bulk pass 2 at its time, delivered twice.
	for i := 0; i < 2; i++ {
		task, err := tasks.NewGrantTask(2, at.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.client.Enqueue(task, asynq.Queue(tasks.QueueSchedule), asynq.TaskID(fmt.Sprintf("grant-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for scan[string](t, b.db, "SELECT status FROM bulk_pass WHERE id = 2") != "COMPLETED" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if got := scan[string](t, b.db, "SELECT string_agg(user_id || ':' || remaining_count, ',') FROM pass WHERE bulk_pass_id = 2"); got != "1:4" {
		t.Fatalf("grant task gave %q, want one pass for user 1 with the bulk pass's 4 uses", got)
	}
	if got := scan[int](t, b.db, "SELECT count(*) FROM batch_job_execution e JOIN batch_job_execution_params p USING (job_execution_id) WHERE p.parameter_name = 'bulk_pass_id'"); got != 1 {
		t.Fatalf("%d executions for the twice-delivered grant task, want 1", got)
	}
}

// hook is a webhook receiver that counts deliveries per idempotency key and
// refuses the notices of user 3.
type hook struct {
	mu   sync.Mutex
	keys map[string]int
	srv  *httptest.Server
}

func newHook(t *testing.T) *hook {
	h := &hook{keys: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"user_id":3`) {
			w.WriteHeader(http.StatusGone)
			return
		}
		h.mu.Lock()
		h.keys[r.Header.Get("Idempotency-Key")]++
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func TestNotifyBeforeClass(t *testing.T) {
	t.Parallel()
	h := newHook(t)
	b := setup(t, options{notifier: notify.NewWebhook(h.srv.URL, time.Second)})
	b.base(t)
	at := runAt
	b.exec(t, `INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at) VALUES (1, 1, 1, 'PROGRESSED', 5, ?), (2, 1, 3, 'PROGRESSED', 5, ?)`, at.Add(-time.Hour), at.Add(-time.Hour))
	book := func(id, pass, user int, status string, start time.Time) {
		b.exec(t, "INSERT INTO booking (id, pass_id, user_id, status, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?)",
			id, pass, user, status, start, start.Add(50*time.Minute))
	}
	book(1, 1, 1, "READY", at)                        // starting now: (run.at, …] excludes it
	book(2, 1, 1, "READY", at.Add(time.Minute))       // in
	book(3, 1, 1, "READY", at.Add(10*time.Minute))    // in (boundary)
	book(4, 1, 1, "READY", at.Add(11*time.Minute))    // out now, in next minute's window
	book(5, 1, 1, "CANCELLED", at.Add(5*time.Minute)) // cancelled
	book(6, 2, 3, "READY", at.Add(5*time.Minute))     // the receiver refuses user 3
	requireCompleted(t, b.run(t, tasks.JobNotifyBeforeClass, at))
	requireCompleted(t, b.run(t, tasks.JobNotifyBeforeClass, at.Add(time.Minute))) // overlapping window
	keys := scan[[]string](t, b.db, "SELECT dedup_key FROM notification ORDER BY dedup_key")
	if fmt.Sprint(keys) != "[before-class:booking:2 before-class:booking:3 before-class:booking:4 before-class:booking:6]" {
		t.Fatalf("notifications %v", keys)
	}
	if got := scan[int](t, b.db, "SELECT count(*) FROM notification WHERE sent AND sent_at IS NOT NULL"); got != 3 {
		t.Fatalf("%d sent, want 3", got)
	}
	if got := scan[string](t, b.db, "SELECT coalesce(error, '') FROM notification WHERE dedup_key = 'before-class:booking:6'"); !strings.Contains(got, "410") {
		t.Fatalf("refused notice error %q, want the 410", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.keys) != 3 {
		t.Fatalf("receiver got %d keys, want 3", len(h.keys))
	}
	for k, n := range h.keys {
		if n != 1 {
			t.Fatalf("key %s delivered %d times", k, n)
		}
	}
}

func TestNotifyBeforeExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.base(t)
	at := runAt
	day := 24 * time.Hour
	b.exec(t, `INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at, ended_at) VALUES
		(1, 1, 1, 'PROGRESSED', 5, ?, ?),   -- ends in 2 days
		(2, 1, 1, 'PROGRESSED', 1, ?, ?),   -- one use left
		(3, 1, 2, 'PROGRESSED', 1, ?, ?),   -- both
		(4, 1, 2, 'PROGRESSED', 5, ?, ?),   -- ends in 4 days
		(5, 1, 2, 'PROGRESSED', 5, ?, ?)    -- ends exactly in 3 days`,
		at.Add(-day), at.Add(2*day), at.Add(-day), at.Add(30*day), at.Add(-day), at.Add(day), at.Add(-day), at.Add(4*day), at.Add(-day), at.Add(3*day))
	requireCompleted(t, b.run(t, tasks.JobNotifyBeforeExpiry, at))
	requireCompleted(t, b.run(t, tasks.JobNotifyBeforeExpiry, at.Add(time.Hour)))
	keys := scan[[]string](t, b.db, "SELECT dedup_key FROM notification ORDER BY dedup_key")
	want := "[before-expiry:pass:1:ends before-expiry:pass:2:last-use before-expiry:pass:3:ends before-expiry:pass:3:last-use before-expiry:pass:5:ends]"
	if fmt.Sprint(keys) != want {
		t.Fatalf("notices %v\nwant %s", keys, want)
	}
	if got := scan[int](t, b.db, "SELECT count(*) FROM notification WHERE NOT sent"); got != 0 {
		t.Fatalf("%d notices unsent", got)
	}
}

func TestMakeStatistics(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.base(t)
	b.exec(t, `INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at) VALUES (1, 1, 1, 'PROGRESSED', 5, '2026-11-01T00:00:00Z')`)
	book := func(end string, status string, attended bool) {
		e, _ := time.Parse(time.RFC3339, end)
		b.exec(t, "INSERT INTO booking (pass_id, user_id, status, attended, started_at, ended_at) VALUES (1, 1, ?, ?, ?, ?)", status, attended, e.Add(-50*time.Minute), e)
	}
	book("2026-11-24T09:59:59Z", "COMPLETED", true)  // before the window
	book("2026-11-24T10:00:00Z", "COMPLETED", true)  // first hour, on its boundary
	book("2026-11-24T10:59:59Z", "CANCELLED", false) // first hour
	book("2026-11-24T11:00:00Z", "COMPLETED", false) // second hour
	book("2026-11-24T12:00:00Z", "COMPLETED", true)  // after the window
	je := b.run(t, tasks.JobMakeStatistics, runAt, "from=2026-11-24T10:00:00Z", "to=2026-11-24T13:00:00Z")
	requireCompleted(t, je)
	got := scan[[]string](t, b.db, "SELECT to_char(statistics_at AT TIME ZONE 'UTC', 'HH24') || ':' || all_count || '/' || attended_count || '/' || cancelled_count FROM statistics ORDER BY statistics_at")
	if fmt.Sprint(got) != "[10:2/1/1 11:1/0/0 12:1/1/0]" {
		t.Fatalf("hourly statistics %v", got)
	}
	read := func(key string) string {
		f, err := b.store.Open(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		bs, _ := io.ReadAll(f)
		return string(bs)
	}
	// 10:00 UTC is 19:00 in Seoul, the gym's zone.
	wantDaily := "period,all_count,attended_count,cancelled_count\n2026-11-24 19:00,2,1,1\n2026-11-24 20:00,1,0,0\n2026-11-24 21:00,1,1,0\ntotal,4,2,1\n"
	if d := read("reports/daily/2026-11-24.csv"); d != wantDaily {
		t.Fatalf("daily report:\n%s\nwant:\n%s", d, wantDaily)
	}
	wantWeekly := "period,all_count,attended_count,cancelled_count\n2026-11-24,4,2,1\ntotal,4,2,1\n"
	if w := read("reports/weekly/2026-W48.csv"); w != wantWeekly {
		t.Fatalf("weekly report:\n%s\nwant:\n%s", w, wantWeekly)
	}
	list, err := tasks.ListReports(context.Background(), b.store)
	if err != nil || len(list) != 2 {
		t.Fatalf("reports %v %v", list, err)
	}
	// Both report branches ran in parallel after the hourly step.
	if n := scan[int](t, b.db, "SELECT count(*) FROM batch_step_execution WHERE job_execution_id = ? AND status = 'COMPLETED'", je.JobExecutionID); n != 3 {
		t.Fatalf("%d completed steps, want 3", n)
	}
}

// TestScheduledLaunchOncePerTick delivers each cron tick's launch task twice,
// as two schedulers would: one execution per tick.
func TestScheduledLaunchOncePerTick(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	tick1 := time.Date(2026, 11, 24, 10, 31, 0, 0, time.UTC)
	for _, now := range []time.Time{tick1.Add(200 * time.Millisecond), tick1.Add(900 * time.Millisecond), tick1.Add(time.Minute + 100*time.Millisecond), tick1.Add(time.Minute + 700*time.Millisecond)} {
		h := tasks.LaunchHandler(b.engine, func() time.Time { return now })
		if err := h.ProcessTask(context.Background(), tasks.NewLaunchTask(tasks.Entry{Job: tasks.JobExpirePasses, Cron: "* * * * *"})); err != nil {
			t.Fatal(err)
		}
	}
	got := scan[[]string](t, b.db, "SELECT parameter_value FROM batch_job_execution_params WHERE parameter_name = 'run.at' ORDER BY 1")
	if fmt.Sprint(got) != "[2026-11-24T10:31:00Z 2026-11-24T10:32:00Z]" {
		t.Fatalf("executions for run.at %v, want one per tick", got)
	}
}

func TestScheduleOverrides(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SCHEDULE_USE_PASSES": "*/5 * * * *", "SCHEDULE_MAKE_STATISTICS": "off"}
	entries, err := tasks.Schedule(env)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Job] = e.Cron
	}
	if got[tasks.JobUsePasses] != "*/5 * * * *" || got[tasks.JobExpirePasses] != "* * * * *" {
		t.Fatalf("schedule %v", got)
	}
	if _, ok := got[tasks.JobMakeStatistics]; ok || len(got) != len(tasks.DefaultSchedule)-1 {
		t.Fatalf("schedule %v, want make-statistics off", got)
	}
	env["SCHEDULE_ADD_PASSES"] = "every minute"
	if _, err := tasks.Schedule(env); err == nil || !strings.Contains(err.Error(), "SCHEDULE_ADD_PASSES") {
		t.Fatalf("bad cron: %v, want an error naming SCHEDULE_ADD_PASSES", err)
	}
}

func TestPurgeIdempotencyKeys(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.exec(t, `INSERT INTO idempotency_key (key, scope, request_hash, status, response, created_at) VALUES
		('old', 's', 'h', 202, '{}', ?), ('fresh', 's', 'h', 202, '{}', ?)`, runAt.Add(-25*time.Hour), runAt.Add(-23*time.Hour))
	je := b.run(t, tasks.JobPurgeIdempotencyKeys, runAt)
	requireCompleted(t, je)
	if keys := scan[[]string](t, b.db, "SELECT key FROM idempotency_key ORDER BY key"); fmt.Sprint(keys) != "[fresh]" {
		t.Fatalf("keys after the purge: %v, want [fresh]", keys)
	}
}

// TestScheduleVarsInConfig: every cron override the jobs know is read by
// config.Load (config keeps its own list; this keeps the two the same).
func TestScheduleVarsInConfig(t *testing.T) {
	t.Parallel()
	var want []string
	for _, e := range tasks.DefaultSchedule {
		want = append(want, e.EnvVar)
	}
	if fmt.Sprint(want) != fmt.Sprint(config.ScheduleVars) {
		t.Fatalf("config.ScheduleVars %v, want the jobs' %v", config.ScheduleVars, want)
	}
	cfg, err := config.Load(func(k string) (string, bool) {
		v, ok := map[string]string{"DATABASE_URL": "postgres://h/db", "SCHEDULE_USE_PASSES": "off"}[k]
		return v, ok
	}, config.Need{})
	if err != nil || cfg.Schedule["SCHEDULE_USE_PASSES"] != "off" {
		t.Fatalf("config.Load: %v, schedule %v", err, cfg.Schedule)
	}
}

// TestRegisteredSchedule: a scheduler's cron table is what the api shows;
// a later scheduler's replaces it, and a job switched off disappears.
func TestRegisteredSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx := context.Background()
	all, err := tasks.Schedule(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tasks.Register(ctx, b.db.DB, all, "host-a/1"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 10, 7, 30, 0, time.UTC)
	reg, err := tasks.Registrations(ctx, b.db.DB, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(reg) != len(tasks.DefaultSchedule) || reg[tasks.JobUsePasses].Cron != "*/10 * * * *" || reg[tasks.JobUsePasses].RegisteredBy != "host-a/1" ||
		reg[tasks.JobUsePasses].Next == nil || !reg[tasks.JobUsePasses].Next.Equal(time.Date(2026, 12, 1, 10, 10, 0, 0, time.UTC)) {
		t.Fatalf("registered %+v", reg[tasks.JobUsePasses])
	}
	some, err := tasks.Schedule(map[string]string{"SCHEDULE_USE_PASSES": "off", "SCHEDULE_EXPIRE_PASSES": "*/2 * * * *"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tasks.Register(ctx, b.db.DB, some, "host-b/2"); err != nil {
		t.Fatal(err)
	}
	if reg, err = tasks.Registrations(ctx, b.db.DB, now); err != nil {
		t.Fatal(err)
	}
	if _, ok := reg[tasks.JobUsePasses]; ok || len(reg) != len(tasks.DefaultSchedule)-1 || reg[tasks.JobExpirePasses].Cron != "*/2 * * * *" ||
		reg[tasks.JobExpirePasses].RegisteredBy != "host-b/2" {
		t.Fatalf("after the second scheduler: %+v", reg)
	}
}

// TestScheduleCollector: a registered job whose latest tick (past the
// grace) has no execution since is reported missed; one launched since is
// not.
func TestScheduleCollector(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx := context.Background()
	entries, _ := tasks.Schedule(nil)
	if err := tasks.Register(ctx, b.db.DB, entries, "host/1"); err != nil {
		t.Fatal(err)
	}
	b.exec(t, "UPDATE schedule_entry SET modified_at = now() - interval '1 hour'")
	missed := func() map[string]float64 {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(tasks.NewScheduleCollector(b.db.DB))
		fams, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		out := map[string]float64{}
		for _, f := range fams {
			if f.GetName() == "passbatch_schedule_missed" {
				for _, m := range f.GetMetric() {
					out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
		return out
	}
	if m := missed(); m[tasks.JobExpirePasses] != 1 || len(m) != len(entries) {
		t.Fatalf("no execution for an hour: missed %v, want expire-passes (every minute) missed", m)
	}
	requireCompleted(t, b.run(t, tasks.JobExpirePasses, time.Now().UTC()))
	if m := missed(); m[tasks.JobExpirePasses] != 0 {
		t.Fatalf("after a launch just now: missed %v, want expire-passes 0", m)
	}
}

// TestDemoMonth: the demo gym has a month of classes at a gym's daily
// volume, and backfilling statistics counts every one of them, a day per
// execution; a second backfill finds the days counted.
func TestDemoMonth(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 10, 17, 0, 0, time.UTC)
	if _, err := seed.Demo(ctx, b.db.DB, now); err != nil {
		t.Fatal(err)
	}
	ids, err := tasks.BackfillStatistics(ctx, b.engine, now, seed.HistoryDays)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != seed.HistoryDays {
		t.Fatalf("%d executions, want one per day (%d)", len(ids), seed.HistoryDays)
	}
	for _, id := range ids {
		requireCompleted(t, b.wait(t, id))
	}
	today := time.Date(2026, 12, 1, 0, 0, 0, 0, models.Seoul)
	from := today.AddDate(0, 0, -seed.HistoryDays)
	var days, counted, booked, cancelled int
	b.db.NewRaw(`SELECT count(DISTINCT date_trunc('day', statistics_at AT TIME ZONE 'Asia/Seoul')) FILTER (WHERE all_count > 0), coalesce(sum(all_count), 0)
		FROM statistics WHERE statistics_at >= ? AND statistics_at < ?`, from, today).Scan(ctx, &days, &counted)
	b.db.NewRaw(`SELECT count(*), count(*) FILTER (WHERE status = 'CANCELLED') FROM booking WHERE ended_at >= ? AND ended_at < ?`, from, today).Scan(ctx, &booked, &cancelled)
	if days != seed.HistoryDays || counted != booked || booked < 25*seed.HistoryDays || cancelled == 0 {
		t.Fatalf("statistics on %d days counting %d; the month has %d bookings (%d cancelled); want %d days, every booking, at least 25 a day",
			days, counted, booked, cancelled, seed.HistoryDays)
	}
	again, err := tasks.BackfillStatistics(ctx, b.engine, now, seed.HistoryDays)
	if err != nil || len(again) != 0 {
		t.Fatalf("a second backfill: %d executions, %v; want none (every day counted)", len(again), err)
	}
}

// TestPurgeJobRepository: the scheduled purge deletes, batch.PurgeBatch
// instances a call, the instances finished more than the retention before
// its run.at, and only those; its own execution counts what it deleted.
func TestPurgeJobRepository(t *testing.T) {
	t.Parallel()
	b := setup(t, options{retention: 90 * 24 * time.Hour})
	const old = batch.PurgeBatch + 500 // two calls of the tasklet, then a third finds none
	b.exec(t, `INSERT INTO batch_job_instance (job_instance_id, job_name, job_key) SELECT i, 'old', 'k' || i FROM generate_series(1, ?) i`, old)
	b.exec(t, `INSERT INTO batch_job_execution (job_instance_id, status, exit_code, create_time, end_time)
		SELECT i, 'COMPLETED', 'COMPLETED', ?::timestamptz - interval '100 days', ?::timestamptz - interval '100 days' FROM generate_series(1, ?) i`, runAt, runAt, old)
	b.exec(t, `SELECT setval('batch_job_instance_job_instance_id_seq', ?)`, old)
	je := b.run(t, tasks.JobPurgeJobRepository, runAt)
	requireCompleted(t, je)
	if n := scan[int](t, b.db, "SELECT count(*) FROM batch_job_execution WHERE job_name = 'old'"); n != 0 {
		t.Fatalf("%d old executions left", n)
	}
	if n := scan[int](t, b.db, "SELECT count(*) FROM batch_job_execution WHERE job_execution_id = ?", je.JobExecutionID); n != 1 {
		t.Fatal("the purge purged itself")
	}
	s := scan[int64](t, b.db, "SELECT write_count FROM batch_step_execution WHERE job_execution_id = ? AND step_name = 'purge'", je.JobExecutionID)
	calls := scan[int64](t, b.db, "SELECT commit_count FROM batch_step_execution WHERE job_execution_id = ? AND step_name = 'purge'", je.JobExecutionID)
	if s != old || calls != 3 {
		t.Fatalf("the purge step wrote %d in %d calls, want %d in 3", s, calls, old)
	}
}
