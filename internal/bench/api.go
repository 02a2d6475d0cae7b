package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// APIResult is the api process under the page load: GET /api/me/passes from
// Clients logged-in users at once.
type APIResult struct {
	Clients, Requests int
	P50, P99          time.Duration
	PerSec            float64
	PeakRSSMB         float64
}

// apiLoad starts the api binary, logs in clients bulk users and has each
// GET /api/me/passes perClient times concurrently.
func (r *runner) apiLoad(ctx context.Context, clients, perClient int) (*APIResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(r.o.APIBin)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+r.dbURL, "REDIS_URL="+r.o.RedisURL, "HTTP_ADDR="+addr, "LOG_LEVEL=warn", "LOG_FORMAT=text",
		"ADMIN_TOKEN=bench-admin-token-0123", "SESSION_SECRET=bench-session-secret-0123456789abcdef", "COOKIE_SECURE=false")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	url := "http://" + addr
	for i := 0; ; i++ {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			return nil, fmt.Errorf("api did not start on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var emails []string
	if err := r.db.NewRaw("SELECT email FROM users WHERE email LIKE 'bulk-%' ORDER BY id LIMIT ?", clients).Scan(ctx, &emails); err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	cls := make([]*http.Client, len(emails))
	for i, e := range emails {
		jar, _ := cookiejar.New(nil)
		cls[i] = &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}
		resp, err := cls[i].Post(url+"/api/login", "application/json", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":"bulk-user-password"}`, e)))
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("login %s: HTTP %d", e, resp.StatusCode)
		}
	}
	lat := make([]time.Duration, 0, len(cls)*perClient)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	start := time.Now()
	for _, c := range cls {
		wg.Add(1)
		go func(c *http.Client) {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				t0 := time.Now()
				resp, err := c.Get(url + "/api/me/passes")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("HTTP %d", resp.StatusCode)
					}
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	total := time.Since(start)
	if firstErr != nil {
		return nil, firstErr
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return &APIResult{Clients: len(cls), Requests: len(lat), P50: lat[len(lat)/2], P99: lat[len(lat)*99/100],
		PerSec: float64(len(lat)) / total.Seconds(), PeakRSSMB: float64(PeakRSSKB(cmd.Process.Pid)) / 1024}, nil
}
