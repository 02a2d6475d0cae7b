package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/web"
)

// BenchmarkMePasses measures GET /api/me/passes under 200 concurrent
// clients (200 logged-in users) over a bulk data set of BENCH_USERS users
// (default 100,000) with one pass each and 10 bookings a user. It reports
// the p50 and p99 latency and requests/s:
//
//	go test -run '^$' -bench MePasses -benchtime 1x ./web/
func BenchmarkMePasses(b *testing.B) {
	users := 100_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_USERS")); err == nil && v > 0 {
		users = v
	}
	ctx := context.Background()
	db := testenv.NewDB(b)
	if _, err := seed.Bulk(ctx, db.DB, seed.BulkOptions{Users: users, Bookings: users * 10, PassesPerUser: 1, Now: time.Now()}); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app := web.New(web.Options{DB: db.DB, Logger: log, AdminToken: adminToken, SessionSecret: "0123456789abcdef0123456789abcdef-bench", LoginLimit: 1 << 20})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go app.Listener(ln)
	defer app.Shutdown()
	url := "http://" + ln.Addr().String()
	const clients = 200
	var emails []string
	if err := db.NewRaw("SELECT email FROM users ORDER BY random() LIMIT ?", clients).Scan(ctx, &emails); err != nil {
		b.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	cls := make([]*http.Client, len(emails))
	for i, e := range emails {
		jar, _ := cookiejar.New(nil)
		cls[i] = &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}
		resp, err := cls[i].Post(url+"/api/login", "application/json", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":"bulk-user-password"}`, e)))
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("login %s: %v %v", e, err, resp)
		}
		resp.Body.Close()
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		const perClient = 25
		lat := make([]time.Duration, 0, clients*perClient)
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for _, c := range cls {
			wg.Add(1)
			go func(c *http.Client) {
				defer wg.Done()
				for i := 0; i < perClient; i++ {
					t0 := time.Now()
					resp, err := c.Get(url + "/api/me/passes")
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				}
			}(c)
		}
		wg.Wait()
		total := time.Since(start)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(len(lat))/total.Seconds(), "req/s")
	}
}
