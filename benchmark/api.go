package benchmark

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/tasks"
)

// APIResult is the api process under load: each route under each load
// generator, and the api's peak memory over all of them.
type APIResult struct {
	Routes []APIRoute
	// Executions is how many job executions the repository held while
	// the admin pages were loaded.
	Executions int
	PeakRSSMB  float64
	// Notes says what was left out (wrk not installed).
	Notes []string
}

// APIRoute is one route under one load: Load says which generator and
// how (a closed loop of N users, each sending its next request when the
// last is answered, or an open loop at a fixed arrival rate, whose
// latencies include the time a request queued).
type APIRoute struct {
	Route, Load      string
	Requests, Errors int
	PerSec           float64
	P50, P99, P999   time.Duration
}

// apiRoute is a route to load and the headers its users send, one set per
// user, rotated.
type apiRoute struct {
	path    string
	users   int
	headers []string // "Name: value"
	open    bool     // also an open loop at apiOpenRate
}

// apiOpenRate is the open loop's arrival rate, requests/s.
const apiOpenRate = 2000

// apiLoad starts the api binary and loads its routes: the members' passes
// (JSON and the page) from 200 logged-in members, and the admin jobs page
// from 20 admins over a repository of APIExecutions executions, each with
// the built-in closed loop, wrk's closed loop (when installed) and, for
// the members' routes, vegeta's open loop at 2,000 requests/s.
func (r *runner) apiLoad(ctx context.Context) (*APIResult, error) {
	res := &APIResult{Executions: r.o.APIExecutions}
	if err := seed.Repository(ctx, r.db, tasks.Registry(tasks.Deps{}).Names(), r.o.APIExecutions, r.runAt); err != nil {
		return nil, fmt.Errorf("seed the job repository: %w", err)
	}
	api, err := r.startAPI()
	if err != nil {
		return nil, err
	}
	defer api.stop()
	members, err := api.loginMembers(ctx, r, 200)
	if err != nil {
		return nil, err
	}
	admins := make([]string, 20)
	for i := range admins {
		admins[i] = "Authorization: Bearer " + benchAdminToken
	}
	routes := []apiRoute{
		{path: "/api/me/passes", users: len(members), headers: members, open: true},
		{path: "/me/passes", users: len(members), headers: members, open: true},
		{path: "/admin/jobs", users: len(admins), headers: admins},
	}
	wrk, wrkErr := exec.LookPath("wrk")
	if wrkErr != nil {
		res.Notes = append(res.Notes, "wrk is not installed (apt-get install wrk): its closed loop was left out")
	}
	for _, rt := range routes {
		r.log("api: %s, %d users, built-in closed loop", rt.path, rt.users)
		out, err := api.closedLoop(ctx, rt, r.o.APISeconds)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rt.path, err)
		}
		res.Routes = append(res.Routes, out)
		if wrkErr == nil {
			r.log("api: %s, %d connections, wrk", rt.path, rt.users)
			if out, err = api.wrk(ctx, wrk, rt, r.o.APISeconds); err != nil {
				return nil, fmt.Errorf("%s: wrk: %w", rt.path, err)
			}
			res.Routes = append(res.Routes, out)
		}
		if rt.open {
			r.log("api: %s, open loop at %d requests/s, vegeta", rt.path, apiOpenRate)
			res.Routes = append(res.Routes, api.openLoop(rt, apiOpenRate, r.o.APISeconds))
		}
	}
	res.PeakRSSMB = float64(PeakRSSKB(api.cmd.Process.Pid)) / 1024
	for _, rt := range res.Routes {
		if rt.Errors > 0 {
			return res, fmt.Errorf("%s (%s): %d of %d requests failed", rt.Route, rt.Load, rt.Errors, rt.Requests)
		}
	}
	return res, nil
}

// benchAdminToken is the api's ADMIN_TOKEN under the bench.
const benchAdminToken = "bench-admin-token-0123"

// apiProcess is the api binary serving the bench database.
type apiProcess struct {
	cmd *exec.Cmd
	url string
	tr  *http.Transport
	dir string // the wrk script and header files
}

func (r *runner) startAPI() (*apiProcess, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(r.o.APIBin)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+r.dbURL, "REDIS_URL="+r.o.RedisURL, "HTTP_ADDR="+addr, "LOG_LEVEL=warn", "LOG_FORMAT=text",
		"ADMIN_TOKEN="+benchAdminToken, "SESSION_SECRET=bench-session-secret-0123456789abcdef", "COOKIE_SECURE=false")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "passbatch-bench-api-")
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	a := &apiProcess{cmd: cmd, url: "http://" + addr, dir: dir, tr: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	for i := 0; ; i++ {
		if resp, err := http.Get(a.url + "/healthz"); err == nil {
			resp.Body.Close()
			return a, nil
		}
		if i > 100 {
			a.stop()
			return nil, fmt.Errorf("api did not start on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *apiProcess) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	_ = a.cmd.Wait()
	os.RemoveAll(a.dir)
}

// loginMembers logs in n bulk members and returns their session cookies
// as "Cookie: name=value" headers.
func (a *apiProcess) loginMembers(ctx context.Context, r *runner, n int) ([]string, error) {
	var emails []string
	if err := r.db.NewRaw("SELECT email FROM users WHERE email LIKE 'bulk-%' ORDER BY id LIMIT ?", n).Scan(ctx, &emails); err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: a.tr, Timeout: 30 * time.Second}
	var out []string
	for _, e := range emails {
		resp, err := hc.Post(a.url+"/api/login", "application/json", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":"bulk-user-password"}`, e)))
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("login %s: HTTP %d", e, resp.StatusCode)
		}
		for _, c := range resp.Cookies() {
			if strings.Contains(c.Name, "session") {
				out = append(out, "Cookie: "+c.Name+"="+c.Value)
			}
		}
	}
	if len(out) != len(emails) {
		return nil, fmt.Errorf("%d session cookies for %d logins", len(out), len(emails))
	}
	return out, nil
}

// get sends one GET with header h ("Name: value") and reads the answer.
func (a *apiProcess) get(hc *http.Client, path, h string) error {
	req, err := http.NewRequest(http.MethodGet, a.url+path, nil)
	if err != nil {
		return err
	}
	name, value, _ := strings.Cut(h, ": ")
	req.Header.Set(name, value)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// closedLoop has rt.users users each send a request as soon as the last
// is answered, for a second of warm-up and then seconds measured.
func (a *apiProcess) closedLoop(ctx context.Context, rt apiRoute, seconds float64) (APIRoute, error) {
	hc := &http.Client{Transport: a.tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	warm := time.Now().Add(time.Second)
	end := warm.Add(time.Duration(seconds * float64(time.Second)))
	var mu sync.Mutex
	var lat []time.Duration
	var errs int
	var firstErr error
	var wg sync.WaitGroup
	for u := 0; u < rt.users; u++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(end) {
					return
				}
				err := a.get(hc, rt.path, rt.headers[u%len(rt.headers)])
				if t0.Before(warm) {
					continue
				}
				mu.Lock()
				lat = append(lat, time.Since(t0))
				if err != nil {
					errs++
					firstErr = cmpErr(firstErr, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(lat) == 0 {
		return APIRoute{}, fmt.Errorf("no request answered: %v", firstErr)
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*f))] }
	return APIRoute{Route: rt.path, Load: fmt.Sprintf("closed loop, %d users (built-in, Go)", rt.users), Requests: len(lat), Errors: errs,
		PerSec: float64(len(lat)) / end.Sub(warm).Seconds(), P50: q(0.50), P99: q(0.99), P999: q(0.999)}, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// wrkScript rotates the users' headers and prints wrk's summary as JSON.
const wrkScript = `
local headers = {}
for line in io.lines(os.getenv("WRK_HEADERS")) do headers[#headers + 1] = line end
local n = math.random(#headers)
request = function()
  n = n % #headers + 1
  local k, v = headers[n]:match("^([^:]+): (.*)$")
  return wrk.format("GET", nil, {[k] = v})
end
done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"status_errors":%d,"p50":%d,"p99":%d,"p999":%d}\n',
    s.requests, s.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
`

// wrk runs wrk with rt.users connections for seconds (after a second's
// warm-up run) and reads its summary.
func (a *apiProcess) wrk(ctx context.Context, bin string, rt apiRoute, seconds float64) (APIRoute, error) {
	script := filepath.Join(a.dir, "rotate.lua")
	headers := filepath.Join(a.dir, strings.ReplaceAll(strings.Trim(rt.path, "/"), "/", "-")+".headers")
	if err := os.WriteFile(script, []byte(wrkScript), 0o600); err != nil {
		return APIRoute{}, err
	}
	if err := os.WriteFile(headers, []byte(strings.Join(rt.headers, "\n")+"\n"), 0o600); err != nil {
		return APIRoute{}, err
	}
	run := func(d string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, bin, "-t2", fmt.Sprintf("-c%d", rt.users), "-d"+d, "--timeout", "10s", "-s", script, a.url+rt.path)
		cmd.Env = append(os.Environ(), "WRK_HEADERS="+headers)
		return cmd.CombinedOutput()
	}
	if _, err := run("1s"); err != nil {
		return APIRoute{}, err
	}
	out, err := run(fmt.Sprintf("%ds", int(seconds+0.5)))
	if err != nil {
		return APIRoute{}, fmt.Errorf("%w: %s", err, out)
	}
	var s struct {
		Requests     int   `json:"requests"`
		DurationUS   int64 `json:"duration_us"`
		Errors       int   `json:"errors"`
		StatusErrors int   `json:"status_errors"`
		P50, P99     int64
		P999         int64 `json:"p999"`
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	found := false
	for sc.Scan() {
		if j, ok := strings.CutPrefix(sc.Text(), "WRKJSON "); ok {
			found = json.Unmarshal([]byte(j), &s) == nil
		}
	}
	if !found || s.DurationUS <= 0 {
		return APIRoute{}, fmt.Errorf("no summary in wrk's output: %s", out)
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return APIRoute{Route: rt.path, Load: fmt.Sprintf("closed loop, %d connections (wrk)", rt.users), Requests: s.Requests,
		Errors: s.Errors + s.StatusErrors, PerSec: float64(s.Requests) / (float64(s.DurationUS) / 1e6),
		P50: us(s.P50), P99: us(s.P99), P999: us(s.P999)}, nil
}

// openLoop sends rate requests a second for seconds whatever the answers
// (vegeta), so a slow answer does not slow the arrivals: its latencies
// include the time requests queued.
func (a *apiProcess) openLoop(rt apiRoute, rate int, seconds float64) APIRoute {
	var n atomic.Int64 // vegeta's workers call the targeter at once
	targeter := func(t *vegeta.Target) error {
		name, value, _ := strings.Cut(rt.headers[int(n.Add(1))%len(rt.headers)], ": ")
		t.Method, t.URL, t.Header = http.MethodGet, a.url+rt.path, http.Header{name: {value}}
		return nil
	}
	attacker := func() *vegeta.Attacker { // one attack each: a finished one stays stopped
		return vegeta.NewAttacker(vegeta.Timeout(10*time.Second), vegeta.Redirects(vegeta.NoFollow), vegeta.KeepAlive(true), vegeta.Connections(1000))
	}
	pace := vegeta.Rate{Freq: rate, Per: time.Second}
	for range attacker().Attack(targeter, pace, time.Second, "warm-up") {
	}
	var m vegeta.Metrics
	for res := range attacker().Attack(targeter, pace, time.Duration(seconds*float64(time.Second)), rt.path) {
		m.Add(res)
	}
	m.Close()
	errs := 0
	for code, k := range m.StatusCodes {
		if code != "200" {
			errs += k
		}
	}
	return APIRoute{Route: rt.path, Load: fmt.Sprintf("open loop, %d requests/s (vegeta)", rate), Requests: int(m.Requests), Errors: errs,
		PerSec: m.Throughput, P50: m.Latencies.P50, P99: m.Latencies.P99, P999: m.Latencies.Quantile(0.999)}
}
