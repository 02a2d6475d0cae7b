package web_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/passbatch/passbatch/seed"
)

var (
	apiBinOnce sync.Once
	apiBin     string
	apiBinErr  error
)

// startAPI runs the cmd/api binary against the bundle's database and Redis
// on a free loopback port and returns its base URL.
func (b *bundle) startAPI(t *testing.T) string {
	t.Helper()
	apiBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "passbatch-api-")
		if err != nil {
			apiBinErr = err
			return
		}
		apiBin = filepath.Join(dir, "api")
		if out, err := exec.Command("go", "build", "-o", apiBin, "../cmd/api").CombinedOutput(); err != nil {
			apiBinErr = fmt.Errorf("build api: %v\n%s", err, out)
		}
	})
	if apiBinErr != nil {
		t.Fatal(apiBinErr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(apiBin)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+b.db.URL, "REDIS_URL="+b.redis, "HTTP_ADDR="+addr,
		"ADMIN_TOKEN="+adminToken, "SESSION_SECRET=0123456789abcdef0123456789abcdef-replicas", "COOKIE_SECURE=false",
		"STORAGE_DIR="+t.TempDir(), "LOG_FORMAT=text", "LOG_LEVEL=warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			return base
		}
		if time.Now().After(deadline) {
			t.Fatal("the api did not start")
		}
	}
}

// TestTwoReplicas runs two api processes on one database and Redis, as
// behind a load balancer: nothing a request needs may live in one of them.
func TestTwoReplicas(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-process test")
	}
	b := setup(t, false)
	apiA, apiB := b.startAPI(t), b.startAPI(t)

	t.Run("FormFromAPostedToB", func(t *testing.T) {
		c := browser(t)
		token := formToken(t, c, apiA, "/login")
		form := url.Values{"_csrf": {token}, "email": {seed.UserEmail}, "password": {seed.UserPassword}}
		req, _ := http.NewRequest("POST", apiB+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", apiB)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/me/passes" {
			t.Fatalf("the login form of A posted to B: %d → %q, want a redirect to /me/passes", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	login := func(base, email, password string) *http.Response {
		resp, err := http.Post(base+"/api/login", "application/json", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	t.Run("LoginLimitShared", func(t *testing.T) {
		var codes []int
		var retry string
		for i := 0; i < 11; i++ {
			base := apiA
			if i%2 == 1 {
				base = apiB
			}
			resp := login(base, seed.UserEmail, "wrong")
			codes = append(codes, resp.StatusCode)
			retry = resp.Header.Get("Retry-After")
		}
		want := "[401 401 401 401 401 401 401 401 401 401 429]"
		if fmt.Sprint(codes) != want || retry == "" {
			t.Fatalf("11 wrong passwords through A and B answered %v (Retry-After %q), want %s with Retry-After", codes, retry, want)
		}
		if resp := login(apiB, seed.AdminEmail, seed.AdminPassword); resp.StatusCode != 200 {
			t.Fatalf("another account from the same address: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("LogoutEverywhere", func(t *testing.T) {
		resp := login(apiA, seed.AdminEmail, seed.AdminPassword)
		var session *http.Cookie
		for _, ck := range resp.Cookies() {
			if strings.Contains(ck.Name, "session") {
				session = ck
			}
		}
		if session == nil {
			t.Fatal("no session cookie")
		}
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		status := func(base, path string) int {
			req, _ := http.NewRequest("GET", base+path, nil)
			req.AddCookie(session)
			r, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			return r.StatusCode
		}
		get := func(base string) int { return status(base, "/api/admin/packages") }
		if st := get(apiB); st != 200 {
			t.Fatalf("the session from A at B: %d, want 200", st)
		}
		// The members' pages check the session in the statement that
		// reads their data: it must end there too.
		if a, p := status(apiB, "/api/me/passes"), status(apiB, "/me/passes"); a != 200 || p != 200 {
			t.Fatalf("the session's passes at B: API %d, page %d, want 200", a, p)
		}
		req, _ := http.NewRequest("POST", apiA+"/api/logout", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", apiA)
		req.AddCookie(session)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if st := get(apiB); st != 401 {
			t.Fatalf("a copy of the cookie logged out through A still works at B: %d, want 401", st)
		}
		if a, p := status(apiB, "/api/me/passes"), status(apiB, "/me/passes"); a != 401 || p != 302 {
			t.Fatalf("passes with the logged-out cookie at B: API %d, page %d, want 401 and a redirect to log in", a, p)
		}
	})
}
