package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/uptrace/bun"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
	"github.com/passbatch/passbatch/web"
)

const adminToken = "test-admin-token-0123"

type bundle struct {
	db     *testenv.DB
	url    string
	engine *batch.Engine
	redis  string
	store  storage.Store
}

// setup serves the real app over a demo-seeded database on a loopback port.
// TestMain drops the demo template the tests copied.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.DropFilled()
	os.Exit(code)
}

func setup(t *testing.T, withWorker bool) *bundle {
	t.Helper()
	return setupWith(t, withWorker, 1000)
}

// setupOpts is setup without a worker, with o changed by tweak.
func setupOpts(t *testing.T, tweak func(o *web.Options)) *bundle {
	t.Helper()
	return newBundle(t, false, func(o *web.Options) { o.LoginLimit = 1000; tweak(o) })
}

func setupWith(t *testing.T, withWorker bool, loginLimit int) *bundle {
	t.Helper()
	return newBundle(t, withWorker, func(o *web.Options) { o.LoginLimit = loginLimit })
}

func newBundle(t *testing.T, withWorker bool, tweak func(o *web.Options)) *bundle {
	t.Helper()
	// The demo gym, seeded once for the package's tests and copied for each.
	db := testenv.NewFilledDB(t, "demo", func(ctx context.Context, db *bun.DB) error {
		_, err := seed.Demo(ctx, db, time.Now())
		return err
	})
	rd := testenv.NewRedis(t)
	opt, _ := asynq.ParseRedisURI(rd.URL)
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, _ := storage.NewLocal(t.TempDir())
	eng := batch.New(db.DB, client, tasks.Registry(tasks.Deps{DB: db.DB, Store: store, Logger: log, Partitions: 4}), batch.Options{Logger: log})
	if err := tasks.Register(context.Background(), db.DB, tasks.DefaultSchedule, "test-scheduler/1"); err != nil {
		t.Fatal(err)
	}
	o := web.Options{
		DB: db.DB, Logger: log, Engine: eng, Client: client, Redis: opt, RedisClient: rd.Client, Store: store,
		AdminToken: adminToken, SessionSecret: "0123456789abcdef0123456789abcdef-test",
		PingRedis: func(ctx context.Context) error { return rd.Client.Ping(ctx).Err() },
		Metrics:   prometheus.NewRegistry(),
	}
	tweak(&o)
	app := web.New(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	t.Cleanup(func() { _ = app.Shutdown() })
	if withWorker {
		w := eng.NewWorker(opt, batch.WorkerOptions{Concurrency: 4, Queues: batch.Queues(map[string]int{tasks.QueueSchedule: 6})})
		mux := asynq.NewServeMux()
		mux.Handle(tasks.TaskGrantBulkPass, tasks.GrantHandler(eng))
		if err := w.Start(context.Background(), mux); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Stop(context.Background()) })
	}
	return &bundle{db: db, url: "http://" + ln.Addr().String(), engine: eng, redis: rd.URL, store: store}
}

// userClient logs in through the API and keeps the session cookie.
func (b *bundle) userClient(t *testing.T, email, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Post(b.url+"/api/login", "application/json", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login %s: %d", email, resp.StatusCode)
	}
	return c
}

type call struct {
	name   string
	who    string // "", "user", "admin", "badtoken"
	method string
	path   string
	body   string
	header map[string]string
	status int
	code   string
	field  string
}

func (b *bundle) do(t *testing.T, user *http.Client, c call) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(c.method, b.url+c.path, strings.NewReader(c.body))
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if len(c.body) > 1<<20 {
		return b.oversize(t, c)
	}
	switch c.who {
	case "user":
		client = user
	case "admin":
		req.Header.Set("Authorization", "Bearer "+adminToken)
	case "badtoken":
		req.Header.Set("Authorization", "Bearer nope")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return answer(resp)
}

// oversize announces c.body's length and reads the answer without sending
// the body: the server refuses by Content-Length and closes the connection,
// which a client still writing would see as a broken pipe.
func (b *bundle) oversize(t *testing.T, c call) (int, map[string]any, http.Header) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		c.method, c.path, adminToken, len(c.body))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return answer(resp)
}

// answer reads a response's status, JSON body (nil when not JSON) and header.
func answer(resp *http.Response) (int, map[string]any, http.Header) {
	defer resp.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, resp.Header
}

func (b *bundle) counts(t *testing.T) string {
	t.Helper()
	var s string
	if err := b.db.NewRaw(`SELECT concat_ws(',', (SELECT count(*) FROM package), (SELECT count(*) FROM users), (SELECT count(*) FROM user_group),
		(SELECT count(*) FROM user_group_mapping), (SELECT count(*) FROM bulk_pass), (SELECT count(*) FROM pass),
		(SELECT count(*) FROM batch_job_execution), (SELECT count(*) FROM idempotency_key))`).Scan(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	user := b.userClient(t, seed.UserEmail, seed.UserPassword)
	past := time.Now().Add(-time.Hour).Format(time.RFC3339)
	future := time.Now().Add(time.Hour).Format(time.RFC3339)
	huge := `{"package_id":1,"user_ids":[` + strings.Repeat("1,", 600000) + `1]}`
	calls := []call{
		{"login malformed JSON", "", "POST", "/api/login", `{"email":`, nil, 400, "bad_request", ""},
		{"login empty body", "", "POST", "/api/login", ``, map[string]string{"Content-Type": "application/json"}, 400, "bad_request", ""},
		{"login without Content-Type", "", "POST", "/api/login", ``, nil, 415, "unsupported_media_type", ""},
		{"login as a text/plain form", "", "POST", "/api/login", `{"email":"user@passbatch.local","password":"x"}`, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type", ""},
		{"login email wrong type", "", "POST", "/api/login", `{"email":1,"password":"x"}`, nil, 422, "invalid", "email"},
		{"login missing password", "", "POST", "/api/login", `{"email":"a@b"}`, nil, 422, "invalid", "password"},
		{"login unknown field", "", "POST", "/api/login", `{"email":"a@b","password":"x","admin":true}`, nil, 422, "invalid", "admin"},
		{"login wrong password", "", "POST", "/api/login", `{"email":"user@passbatch.local","password":"nope"}`, nil, 401, "unauthenticated", ""},
		{"login SQL in email", "", "POST", "/api/login", `{"email":"' OR 1=1 --","password":"x"}`, nil, 401, "unauthenticated", ""},
		{"my passes without credentials", "", "GET", "/api/me/passes", ``, nil, 401, "unauthenticated", ""},
		{"my passes with a wrong token", "badtoken", "GET", "/api/me/passes", ``, nil, 401, "unauthenticated", ""},
		{"another user's passes", "user", "GET", "/api/users/1/passes", ``, nil, 403, "forbidden", ""},
		{"unknown user's passes", "admin", "GET", "/api/users/999999/passes", ``, nil, 404, "not_found", ""},
		{"non-numeric user id", "admin", "GET", "/api/users/abc/passes", ``, nil, 404, "not_found", ""},
		{"limit zero", "user", "GET", "/api/me/passes?limit=0", ``, nil, 422, "invalid", "limit"},
		{"limit huge", "user", "GET", "/api/me/passes?limit=100000", ``, nil, 422, "invalid", "limit"},
		{"after negative", "user", "GET", "/api/me/passes?after=-1", ``, nil, 422, "invalid", "after"},
		{"admin route as user", "user", "GET", "/api/admin/packages", ``, nil, 403, "forbidden", ""},
		{"admin route without credentials", "", "GET", "/api/admin/packages", ``, nil, 401, "unauthenticated", ""},
		{"package without name", "admin", "POST", "/api/admin/packages", `{}`, nil, 422, "invalid", "name"},
		{"package negative count", "admin", "POST", "/api/admin/packages", `{"name":"x","count":-1}`, nil, 422, "invalid", "count"},
		{"package count as text", "admin", "POST", "/api/admin/packages", `{"name":"x","count":"ten"}`, nil, 422, "invalid", "count"},
		{"package zero period", "admin", "POST", "/api/admin/packages", `{"name":"x","period_days":0}`, nil, 422, "invalid", "period_days"},
		{"package huge count", "admin", "POST", "/api/admin/packages", `{"name":"x","count":99999999999}`, nil, 422, "invalid", "count"},
		{"package count overflow", "admin", "POST", "/api/admin/packages", `{"name":"x","count":1e30}`, nil, 422, "invalid", "count"},
		{"package name too long", "admin", "POST", "/api/admin/packages", `{"name":"` + strings.Repeat("가", 101) + `"}`, nil, 422, "invalid", "name"},
		{"package script name with bad period", "admin", "POST", "/api/admin/packages", `{"name":"<script>alert(1)</script>","period_days":-5}`, nil, 422, "invalid", "period_days"},
		{"grant empty", "admin", "POST", "/api/admin/grants", `{}`, nil, 422, "invalid", "package_id"},
		{"grant empty user list", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[]}`, nil, 422, "invalid", "user_ids"},
		{"grant unknown package", "admin", "POST", "/api/admin/grants", `{"package_id":999,"user_ids":[2]}`, nil, 422, "invalid", "package_id"},
		{"grant unknown users", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[2,999999]}`, nil, 422, "invalid", "user_ids"},
		{"grant zero count", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[2],"count":0}`, nil, 422, "invalid", "count"},
		{"grant in the past", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[2],"at":"` + past + `"}`, nil, 422, "invalid", "at"},
		{"grant invalid time", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[2],"at":"yesterday"}`, nil, 422, "invalid", ""},
		{"grant users and group", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[2],"user_group_id":1}`, nil, 422, "invalid", "user_ids"},
		{"grant SQL in user ids", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":["1; DROP TABLE users"]}`, nil, 422, "invalid", "user_ids"},
		{"grant negative user id", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[-3]}`, nil, 422, "invalid", "user_ids"},
		{"grant end before start", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[2],"started_at":"` + future + `","ended_at":"` + past + `"}`, nil, 422, "invalid", "ended_at"},
		{"grant unknown group", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_group_id":424242}`, nil, 422, "invalid", "user_group_id"},
		{"grant as a user", "user", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[2]}`, nil, 403, "forbidden", ""},
		{"grant oversize body", "admin", "POST", "/api/admin/grants", huge, nil, 413, "too_large", ""},
		{"bulk pass without group", "admin", "POST", "/api/admin/bulk-passes", `{"package_id":1}`, nil, 422, "invalid", "user_group_id"},
		{"statistics bad granularity", "admin", "GET", "/api/admin/statistics?granularity=<script>", ``, nil, 422, "invalid", "granularity"},
		{"statistics from after to", "admin", "GET", "/api/admin/statistics?from=2026-11-10T00:00:00Z&to=2026-11-01T00:00:00Z", ``, nil, 422, "invalid", "to"},
		{"statistics bad from", "admin", "GET", "/api/admin/statistics?from=notatime", ``, nil, 422, "invalid", "from"},
		{"statistics hourly span too long", "admin", "GET", "/api/admin/statistics?granularity=hour&from=2026-01-01T00:00:00Z&to=2026-06-01T00:00:00Z", ``, nil, 422, "invalid", "to"},
		{"launch unknown job", "admin", "POST", "/api/admin/jobs/%3Cscript%3E/executions", `{}`, nil, 404, "not_found", ""},
		{"launch with bad params", "admin", "POST", "/api/admin/jobs/make-statistics/executions", `{"params":{"from":"2026-11-10T00:00:00Z","to":"2026-11-01T00:00:00Z"}}`, nil, 422, "invalid", "params"},
		{"launch params wrong type", "admin", "POST", "/api/admin/jobs/expire-passes/executions", `{"params":{"run.at":5}}`, nil, 422, "invalid", "params"},
		{"unknown execution", "admin", "GET", "/api/admin/executions/999999", ``, nil, 404, "not_found", ""},
		{"stop unknown execution", "admin", "POST", "/api/admin/executions/999999/stop", ``, nil, 404, "not_found", ""},
		{"unknown execution action", "admin", "POST", "/api/admin/executions/1/explode", ``, nil, 404, "not_found", ""},
		{"executions bad status", "admin", "GET", "/api/admin/executions?status=RUNNING", ``, nil, 422, "invalid", "status"},
		{"report path climbing out", "admin", "GET", "/api/admin/reports/..%2F..%2Fetc%2Fpasswd", ``, nil, 404, "not_found", ""},
		{"unknown API route", "admin", "GET", "/api/nope", ``, nil, 404, "not_found", ""},
	}
	before := b.counts(t)
	for _, c := range calls {
		status, body, _ := b.do(t, user, c)
		errBody, _ := body["error"].(map[string]any)
		if status >= 500 || status != c.status || errBody == nil || errBody["code"] != c.code || (c.field != "" && errBody["field"] != c.field) {
			t.Errorf("%s: %s %s → %d %v; want %d %s field %q", c.name, c.method, c.path, status, body, c.status, c.code, c.field)
		}
	}
	if after := b.counts(t); after != before {
		t.Fatalf("row counts changed by bad requests: %s → %s", before, after)
	}
	t.Logf("%d bad requests checked", len(calls))
	// An Idempotency-Key reused with another body is refused and creates nothing.
	key := map[string]string{"Idempotency-Key": "k-1"}
	ok := call{"grant", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[2]}`, key, 202, "", ""}
	if st, body, _ := b.do(t, user, ok); st != 202 {
		t.Fatalf("grant: %d %v", st, body)
	}
	mid := b.counts(t)
	if st, body, _ := b.do(t, user, call{"reuse", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[3]}`, key, 0, "", ""}); st != 422 {
		t.Fatalf("key reused with another body: %d %v, want 422", st, body)
	}
	if after := b.counts(t); after != mid {
		t.Fatalf("reused key changed rows: %s → %s", mid, after)
	}
}

func TestGrantFlow(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	at := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second)
	body := fmt.Sprintf(`{"package_id":1,"user_ids":[3,4,5],"count":7,"at":%q}`, at.Format(time.RFC3339))
	c := call{"grant", "admin", "POST", "/api/admin/grants", body, map[string]string{"Idempotency-Key": "grant-flow-1"}, 202, "", ""}
	st, first, _ := b.do(t, nil, c)
	if st != 202 {
		t.Fatalf("grant: %d %v", st, first)
	}
	st, second, h := b.do(t, nil, c) // the client retries
	if st != 202 || fmt.Sprint(first) != fmt.Sprint(second) || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %v (replayed %q), want the first response %v", st, second, h.Get("Idempotent-Replayed"), first)
	}
	id := int64(first["bulk_pass_id"].(float64))
	var n int
	if err := b.db.NewRaw("SELECT count(*) FROM bulk_pass").Scan(context.Background(), &n); err != nil || n != 3 {
		t.Fatalf("%d bulk passes after a retried grant, want the 2 seeded + 1 (%v)", n, err)
	}
	// The per-minute sweep overlaps the grant task.
	go func() {
		time.Sleep(2500 * time.Millisecond)
		_, _ = b.engine.Launch(context.Background(), tasks.JobAddPasses, batch.Params{batch.ParamRunAt: {Value: time.Now().UTC().Format(time.RFC3339Nano), Identifying: true}})
	}()
	deadline := time.Now().Add(30 * time.Second)
	var granted []string
	for time.Now().Before(deadline) {
		granted = nil
		if err := b.db.NewRaw("SELECT user_id || ':' || remaining_count FROM pass WHERE bulk_pass_id = ? ORDER BY user_id", id).Scan(context.Background(), &granted); err != nil {
			t.Fatal(err)
		}
		if len(granted) == 3 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	granted = nil
	_ = b.db.NewRaw("SELECT user_id || ':' || remaining_count FROM pass WHERE bulk_pass_id = ? ORDER BY user_id", id).Scan(context.Background(), &granted)
	if fmt.Sprint(granted) != "[3:7 4:7 5:7]" {
		t.Fatalf("granted %v, want users 3, 4, 5 with 7 uses each, once", granted)
	}
	var firstPass time.Time
	_ = b.db.NewRaw("SELECT min(created_at) FROM pass WHERE bulk_pass_id = ?", id).Scan(context.Background(), &firstPass)
	if firstPass.Before(at.Add(-time.Second)) {
		t.Fatalf("passes created at %s, before the grant time %s", firstPass, at)
	}
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	b := setupWith(t, false, 3)
	var codes []int
	for i := 0; i < 4; i++ {
		st, _, _ := b.do(t, nil, call{"login", "", "POST", "/api/login", `{"email":"user@passbatch.local","password":"wrong"}`, nil, 0, "", ""})
		codes = append(codes, st)
	}
	// Then even the right password waits out the minute.
	st, body, _ := b.do(t, nil, call{"login", "", "POST", "/api/login", `{"email":"user@passbatch.local","password":"user1234!"}`, nil, 0, "", ""})
	codes = append(codes, st)
	if fmt.Sprint(codes) != "[401 401 401 429 429]" {
		t.Fatalf("failed logins answered %v (%v), want three 401s then 429", codes, body)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	for path, want := range map[string]string{"/healthz": `"status":"ok"`, "/readyz": `"postgres":"ok","redis":"ok"`} {
		resp, err := http.Get(b.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte(want)) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}

func (b *bundle) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := b.db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// waitExecution waits up to 30 s for a job execution to end; its status.
func (b *bundle) waitExecution(t *testing.T, id int64) string {
	t.Helper()
	var st string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := b.db.NewRaw("SELECT status FROM batch_job_execution WHERE job_execution_id = ?", id).Scan(context.Background(), &st); err != nil {
			t.Fatal(err)
		}
		if !batch.Running(st) {
			break
		}
	}
	return st
}
