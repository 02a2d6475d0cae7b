package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/web"
)

// The attacker's and the operator's findings of the web review, each shown
// to fail before its fix.

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]*)"`)

// browser is a client with cookies that does not follow redirects.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// formToken GETs page on base with c and returns its form's CSRF token.
func formToken(t *testing.T, c *http.Client, base, page string) string {
	t.Helper()
	resp, err := c.Get(base + page)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(body)
	if m == nil {
		t.Fatalf("%s has no CSRF field (%d)", page, resp.StatusCode)
	}
	return string(m[1])
}

// postForm posts values with the CSRF token of page to base+path.
func postForm(t *testing.T, c *http.Client, base, page, path string, values url.Values) *http.Response {
	t.Helper()
	values.Set("_csrf", formToken(t, c, base, page))
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestLoginNextStaysOnSite: the post-login redirect cannot inject a
// header (CR/LF) or leave the site (a tab or backslash a browser drops).
func TestLoginNextStaysOnSite(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	base, _ := url.Parse(b.url)
	for _, next := range []string{"/x\r\nX-Injected: yes", "/\t/evil.example", "/\n/evil.example", "//evil.example", "/\\evil.example",
		"https://evil.example/", "/%0d%0aX-Injected: yes"} {
		c := browser(t)
		resp := postForm(t, c, b.url, "/login", "/login", url.Values{"email": {seed.UserEmail}, "password": {seed.UserPassword}, "next": {next}})
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || resp.Header.Get("X-Injected") != "" || strings.ContainsAny(loc, "\r\n\t\\") {
			t.Errorf("next %q: %d, Location %q, X-Injected %q", next, resp.StatusCode, loc, resp.Header.Get("X-Injected"))
			continue
		}
		// What a browser does with it: drop tabs and newlines, then resolve.
		u, err := base.Parse(strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(loc))
		if err != nil || u.Host != base.Host {
			t.Errorf("next %q redirects off the site: Location %q", next, loc)
		}
	}
}

// TestCookieAPIWritesNeedSameOriginJSON: a cookie-authenticated unsafe API
// request must be JSON and come from our origin (or carry the CSRF
// header); asynqmon likewise, and read-only by default.
func TestCookieAPIWritesNeedSameOriginJSON(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	admin := b.userClient(t, seed.AdminEmail, seed.AdminPassword)
	send := func(method, path, ctype, origin, body string) int {
		req, _ := http.NewRequest(method, b.url+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := admin.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	evil := "https://evil.example"
	for _, tt := range []struct {
		name                        string
		method, path, ctype, origin string
		body                        string
		want                        int
	}{
		{"cross-origin stop", "POST", "/api/admin/executions/1/stop", "application/json", evil, "", 403},
		{"cross-origin package", "POST", "/api/admin/packages", "application/json", evil, `{"name":"evil"}`, 403},
		{"text/plain package", "POST", "/api/admin/packages", "text/plain", b.url, `{"name":"evil"}`, 415},
		{"form-encoded package", "POST", "/api/admin/packages", "application/x-www-form-urlencoded", b.url, `name=evil`, 415},
		{"no origin at all", "POST", "/api/admin/packages", "application/json", "", `{"name":"evil"}`, 403},
		{"cross-origin asynqmon pause", "POST", "/admin/monitoring/api/queues/default:pause", "application/json", evil, "", 403},
		{"same-origin asynqmon pause, read-only", "POST", "/admin/monitoring/api/queues/default:pause", "application/json", b.url, "", 405},
		{"cross-origin login", "POST", "/api/login", "application/json", evil, `{"email":"a@b","password":"x"}`, 403},
		{"text/plain login", "POST", "/api/login", "text/plain", b.url, `{"email":"a@b","password":"x"}`, 415},
		{"same-origin package", "POST", "/api/admin/packages", "application/json", b.url, `{"name":"ok"}`, 201},
	} {
		if got := send(tt.method, tt.path, tt.ctype, tt.origin, tt.body); got != tt.want {
			t.Errorf("%s: %s %s → %d, want %d", tt.name, tt.method, tt.path, got, tt.want)
		}
	}
	var evilPackages int
	if err := b.db.NewRaw("SELECT count(*) FROM package WHERE name = 'evil'").Scan(context.Background(), &evilPackages); err != nil || evilPackages != 0 {
		t.Fatalf("%d packages made by refused requests (%v)", evilPackages, err)
	}
	// Bearer-token clients are not browsers: no origin needed.
	req, _ := http.NewRequest("POST", b.url+"/api/admin/packages", strings.NewReader(`{"name":"by token"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("bearer request: %v %v", resp, err)
	}
}

// TestSecurityHeaders: every page forbids framing, sniffing and inline
// script, and keeps the referrer on the site.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	for _, path := range []string{"/login", "/api/me/passes", "/nope"} {
		resp, err := http.Get(b.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") == "" {
			t.Errorf("%s: CSP %q, nosniff %q, Referrer-Policy %q", path, csp, resp.Header.Get("X-Content-Type-Options"), resp.Header.Get("Referrer-Policy"))
		}
	}
}

// TestMetricsNeedTheirOwnToken: the api's /metrics opens to METRICS_TOKEN
// only, never to the admin token (a scraper holding it would hold the keys
// to everything); with no METRICS_TOKEN it is not served on the public
// port at all (serve it on METRICS_ADDR instead).
func TestMetricsNeedTheirOwnToken(t *testing.T) {
	t.Parallel()
	const metricsToken = "metrics-token-for-the-scraper"
	get := func(b *bundle, token string) int {
		req, _ := http.NewRequest("GET", b.url+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	b := setupOpts(t, func(o *web.Options) { o.MetricsToken = metricsToken })
	if none, wrong, admin, right := get(b, ""), get(b, "nope"), get(b, adminToken), get(b, metricsToken); none != 401 || wrong != 401 || admin != 401 || right != 200 {
		t.Fatalf("/metrics without a token %d, a wrong one %d, the admin token %d, METRICS_TOKEN %d; want 401, 401, 401, 200", none, wrong, admin, right)
	}
	off := setup(t, false)
	if admin, none := get(off, adminToken), get(off, ""); admin != 404 || none != 404 {
		t.Fatalf("/metrics with no METRICS_TOKEN set: admin token %d, none %d; want 404 (not served on the public port)", admin, none)
	}
}

// TestReadyzNamesNoAddresses: /readyz says which dependency is down, not
// where it lives or who connects to it.
func TestReadyzNamesNoAddresses(t *testing.T) {
	t.Parallel()
	cfg, _ := pgx.ParseConfig("postgres://secretuser@127.0.0.1:1/secretdb?sslmode=disable&connect_timeout=1")
	down := bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
	defer down.Close()
	b := setupOpts(t, func(o *web.Options) { o.DB = down })
	resp, err := http.Get(b.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"postgres":"unavailable"`) {
		t.Fatalf("/readyz with Postgres down: %d %s", resp.StatusCode, body)
	}
	for _, leak := range []string{"127.0.0.1", "secretuser", "secretdb", "dial", "connect"} {
		if strings.Contains(string(body), leak) {
			t.Errorf("/readyz shows %q: %s", leak, body)
		}
	}
}

// TestNoSessionlessState: a request without cookies costs the server no
// memory (no token kept per request) and gets no cookie unless the page
// has a form. Not parallel: it measures the heap.
func TestNoSessionlessState(t *testing.T) {
	b := setup(t, false)
	for _, path := range []string{"/nope", "/healthz", "/static/app.css", "/api/nope"} {
		resp, err := http.Get(b.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
			t.Errorf("GET %s without cookies set %v", path, sc)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	n := 30_000 // make test; the 100k: SESSIONLESS_REQUESTS=100000
	if v, err := strconv.Atoi(os.Getenv("SESSIONLESS_REQUESTS")); err == nil && v > 0 {
		n = v
	}
	before := heap()
	for i := 0; i < n; i++ {
		resp, err := c.Get(fmt.Sprintf("%s/login?i=%d", b.url, i))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	grew := int64(heap()) - int64(before)
	t.Logf("heap after %d cookie-less requests: %+d KiB", n, grew/1024)
	if grew > 2<<20 {
		t.Fatalf("the heap grew by %d KiB over %d cookie-less requests: per-request state is kept", grew/1024, n)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestDownloadsStream: an export download is streamed from storage, never
// held whole in memory, and a byte range is answered 206. Not parallel:
// it measures the heap.
func TestDownloadsStream(t *testing.T) {
	b := setup(t, false)
	ctx := context.Background()
	const size = 96 << 20
	if _, err := b.store.Put(ctx, "exports/77/big.csv", io.LimitReader(zeros{}, size)); err != nil {
		t.Fatal(err)
	}
	b.exec(t, `INSERT INTO export (id, requested_by, kind, format, filter_hash, status, file_key, size_bytes, sha256, total_rows, written_rows, expires_at)
		VALUES (77, 'test', 'bookings', 'csv', 'big', 'COMPLETED', 'exports/77/big.csv', ?, 'abc', 1, 1, now() + interval '1 day')`, size)
	get := func(rangeHeader string) (*http.Response, int64) {
		req, _ := http.NewRequest("GET", b.url+"/api/admin/exports/77/download", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if rangeHeader != "" {
			req.Header.Set("Range", rangeHeader)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, _ := io.Copy(io.Discard, resp.Body)
		return resp, n
	}
	if resp, n := get("bytes=100-199"); resp.StatusCode != 206 || n != 100 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", size) {
		t.Fatalf("range: %d, %d bytes, Content-Range %q", resp.StatusCode, n, resp.Header.Get("Content-Range"))
	}
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapInuse
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	resp, n := get("")
	close(stop)
	<-sampled
	if resp.StatusCode != 200 || n != size || resp.Header.Get("ETag") != `"abc"` {
		t.Fatalf("download: %d, %d bytes (want %d), ETag %q", resp.StatusCode, n, size, resp.Header.Get("ETag"))
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap in use grew by at most %d KiB while a %d MiB file was downloaded", grew/1024, size>>20)
	if grew > 24<<20 {
		t.Fatalf("the heap grew by %d MiB during a %d MiB download: the file is held in memory", grew>>20, size>>20)
	}
}

// TestGrantFormAllOrNothing: a grant from the page that fails half-way
// (here the bulk pass cannot be written) leaves nothing behind — not the
// group made for its users.
func TestGrantFormAllOrNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	b.exec(t, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON bulk_pass FOR EACH ROW EXECUTE FUNCTION refuse()`)
	before := b.counts(t)
	c := browser(t)
	postForm(t, c, b.url, "/login", "/login", url.Values{"email": {seed.AdminEmail}, "password": {seed.AdminPassword}})
	resp := postForm(t, c, b.url, "/admin/bulk-passes", "/admin/bulk-passes", url.Values{"package_id": {"1"}, "user_ids": {"2, 3"}})
	if resp.StatusCode < 300 || resp.StatusCode == 303 && !strings.Contains(resp.Header.Get("Location"), "error") {
		t.Fatalf("the failed grant answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if after := b.counts(t); after != before {
		t.Fatalf("a failed grant left rows behind: %s → %s", before, after)
	}
}

// TestIdempotencyKeyByRoute: a key is scoped by who asks and the route,
// not by how the path is spelled.
func TestIdempotencyKeyByRoute(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	body := `{"package_id":1,"user_ids":[2]}`
	key := map[string]string{"Idempotency-Key": "respelled"}
	for _, path := range []string{"/api/admin/grants", "/API/admin/grants/", "/api/Admin/Grants"} {
		if st, body, _ := b.do(t, nil, call{path, "admin", "POST", path, body, key, 0, "", ""}); st != 202 {
			t.Fatalf("%s: %d %v", path, st, body)
		}
	}
	var n int
	if err := b.db.NewRaw("SELECT count(*) FROM bulk_pass").Scan(context.Background(), &n); err != nil || n != 3 {
		t.Fatalf("%d bulk passes after one grant sent three ways with one key, want the 2 seeded + 1 (%v)", n, err)
	}
}

// TestCookiesFollowTheSettingNotTheClient: with COOKIE_SECURE the cookies
// are __Host- and Secure; without it they are neither, whatever
// X-Forwarded-Proto a client sends.
func TestCookiesFollowTheSettingNotTheClient(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{true, false} {
		b := setupOpts(t, func(o *web.Options) { o.CookieSecure = secure })
		req, _ := http.NewRequest("GET", b.url+"/login", nil)
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cs := resp.Cookies()
		if len(cs) != 1 {
			t.Fatalf("secure=%v: cookies %v, want the pre-session cookie", secure, cs)
		}
		c := cs[0]
		if c.Secure != secure || strings.HasPrefix(c.Name, "__Host-") != secure || c.Path != "/" || !c.HttpOnly {
			t.Errorf("COOKIE_SECURE=%v and X-Forwarded-Proto: https: cookie %s Secure=%v Path=%q HttpOnly=%v",
				secure, c.Name, c.Secure, c.Path, c.HttpOnly)
		}
		if hsts := resp.Header.Get("Strict-Transport-Security"); (hsts != "") != secure {
			t.Errorf("COOKIE_SECURE=%v: HSTS %q", secure, hsts)
		}
	}
}

// TestClientAddressFromTrustedProxiesOnly: X-Forwarded-For names the
// client only when the connection comes from a TRUSTED_PROXIES address;
// otherwise a client could pick a fresh address for every guess.
func TestClientAddressFromTrustedProxiesOnly(t *testing.T) {
	t.Parallel()
	guess := func(b *bundle, forwardedFor string) int {
		req, _ := http.NewRequest("POST", b.url+"/api/login", strings.NewReader(`{"email":"user@passbatch.local","password":"wrong"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", forwardedFor)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, trusted := range []bool{false, true} {
		b := setupOpts(t, func(o *web.Options) {
			o.LoginLimit = 3
			if trusted {
				o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			}
		})
		var codes []int
		for i := 0; i < 4; i++ {
			codes = append(codes, guess(b, fmt.Sprintf("203.0.113.%d", i+1))) // a new address each time
		}
		want := "[401 401 401 429]" // X-Forwarded-For ignored: one client
		if trusted {
			want = "[401 401 401 401]" // four clients behind the proxy
		}
		if fmt.Sprint(codes) != want {
			t.Errorf("trusted=%v: 4 guesses from 4 forwarded addresses answered %v, want %s", trusted, codes, want)
		}
		if trusted {
			for i := 0; i < 3; i++ {
				guess(b, "198.51.100.7, 203.0.113.99") // the right-most untrusted hop is the client
			}
			if code := guess(b, "10.9.9.9, 203.0.113.99"); code != 429 {
				t.Errorf("a spoofed left-most hop got %d, want 429: the client is the right-most untrusted hop", code)
			}
		}
	}
}

// TestParallelWrongLoginsAreLimited: 40 wrong passwords sent at once for
// one email get past the limit only as far as it allows (10 answered 401),
// the rest 429: the attempt is counted before the password is checked.
func TestParallelWrongLoginsAreLimited(t *testing.T) {
	t.Parallel()
	b := setupWith(t, false, 10)
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := http.Post(b.url+"/api/login", "application/json", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":"wrong-%d"}`, seed.UserEmail, i)))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			got[resp.StatusCode]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if got[401] != 10 || got[429] != 30 {
		t.Fatalf("40 parallel wrong logins: %v, want 10 × 401 and 30 × 429", got)
	}
	// The right password within the window is refused too, then.
	resp, err := http.Post(b.url+"/api/login", "application/json", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, seed.UserEmail, seed.UserPassword)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 {
		t.Fatalf("the right password after the limit: %d, want 429", resp.StatusCode)
	}
}

// TestForwardedForEveryHeaderLine: a proxy may append its own
// X-Forwarded-For line after the client's: the address is the right-most
// untrusted one over every line, so a client cannot pick a fresh address
// for each guess by sending a line of its own first.
func TestForwardedForEveryHeaderLine(t *testing.T) {
	t.Parallel()
	b := setupOpts(t, func(o *web.Options) {
		o.LoginLimit = 3
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	var codes []int
	for i := 0; i < 4; i++ {
		req, _ := http.NewRequest("POST", b.url+"/api/login", strings.NewReader(`{"email":"user@passbatch.local","password":"wrong"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Add("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1)) // the client's invention
		req.Header.Add("X-Forwarded-For", "203.0.113.7")                     // the proxy's line: the real client
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[401 401 401 429]" {
		t.Fatalf("4 guesses from one client behind a proxy that adds a line: %v, want [401 401 401 429]", codes)
	}
}

// TestNoStoreOnAuthenticatedAnswers: what a signed-in member or an admin
// gets, downloads included, says Cache-Control: no-store (a shared cache
// or the browser's must not keep it); the static assets stay cacheable.
func TestNoStoreOnAuthenticatedAnswers(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	user := b.userClient(t, seed.UserEmail, seed.UserPassword)
	if _, err := b.store.Put(context.Background(), "reports/daily/2026-11-24.csv", strings.NewReader("day,all\n")); err != nil {
		t.Fatal(err)
	}
	check := func(client *http.Client, path, admin string, want bool) {
		req, _ := http.NewRequest("GET", b.url+path, nil)
		if admin != "" {
			req.Header.Set("Authorization", "Bearer "+admin)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Cache-Control") == "no-store"; resp.StatusCode != 200 || got != want {
			t.Errorf("GET %s: %d, Cache-Control %q; want 200 and no-store %v", path, resp.StatusCode, resp.Header.Get("Cache-Control"), want)
		}
	}
	check(user, "/me/passes", "", true)
	check(user, "/api/me/passes", "", true)
	check(http.DefaultClient, "/api/admin/jobs", adminToken, true)
	check(http.DefaultClient, "/api/admin/reports/daily/2026-11-24.csv", adminToken, true)
	check(http.DefaultClient, "/static/app.css", "", false)
}

// TestNULByteIsABadRequest: a NUL byte anywhere in the input (a JSON
// string, a form field, the query) is a 400 that names it, not a 500
// with an ERROR in the log (Postgres refuses NUL in text).
func TestNULByteIsABadRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	send := func(method, path, ctype, body string) (int, string) {
		req, _ := http.NewRequest(method, b.url+path, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	for _, c := range []struct{ method, path, ctype, body string }{
		{"POST", "/api/login", "application/json", `{"email":"a\u0000b@x","password":"p"}`},
		{"POST", "/api/admin/packages", "application/json", `{"name":"10회\u0000권","count":10}`},
		{"POST", "/api/admin/packages", "application/json", `{"na\u0000me":"x","count":10}`},
		{"GET", "/api/admin/members?q=%00", "", ""},
		{"POST", "/login", "application/x-www-form-urlencoded", "email=a%00b%40x&password=p"},
	} {
		st, body := send(c.method, c.path, c.ctype, c.body)
		if st != 400 || !strings.Contains(body, "NUL") {
			t.Errorf("%s %s with a NUL byte: %d %s, want 400 naming it", c.method, c.path, st, body)
		}
	}
	if st, _ := send("POST", "/api/admin/packages", "application/json", `{"name":"literal \\u0000 text","count":10}`); st != 201 && st != 200 {
		t.Errorf("an escaped backslash before u0000 is text, not a NUL: %d", st)
	}
}
