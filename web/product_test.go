package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/passbatch/passbatch/seed"
)

// TestProductAPIRefusals: every new route refuses a member (403), no
// credentials (401) and bad input (422 naming the field, 404 for an
// unknown id, 409 for a state conflict), and changes nothing doing so.
func TestProductAPIRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	user := b.userClient(t, seed.UserEmail, seed.UserPassword)
	long := strings.Repeat("가", 101)
	calls := []call{
		{"members as a member", "user", "GET", "/api/admin/members", ``, nil, 403, "forbidden", ""},
		{"members without credentials", "", "GET", "/api/admin/members", ``, nil, 401, "unauthenticated", ""},
		{"groups as a member", "user", "POST", "/api/admin/user-groups", `{"name":"x"}`, nil, 403, "forbidden", ""},
		{"package patch as a member", "user", "PATCH", "/api/admin/packages/1", `{"name":"x"}`, nil, 403, "forbidden", ""},
		{"my bookings without credentials", "", "GET", "/api/me/bookings", ``, nil, 401, "unauthenticated", ""},
		{"my bookings as the admin token", "admin", "GET", "/api/me/bookings", ``, nil, 403, "forbidden", ""},
		{"my notices bad limit", "user", "GET", "/api/me/notifications?limit=0", ``, nil, 422, "invalid", "limit"},
		{"group without name", "admin", "POST", "/api/admin/user-groups", `{"name":"  "}`, nil, 422, "invalid", "name"},
		{"group name too long", "admin", "POST", "/api/admin/user-groups", `{"name":"` + long + `"}`, nil, 422, "invalid", "name"},
		{"group unknown field", "admin", "POST", "/api/admin/user-groups", `{"name":"x","owner":1}`, nil, 422, "invalid", "owner"},
		{"unknown group", "admin", "GET", "/api/admin/user-groups/999999", ``, nil, 404, "not_found", ""},
		{"patch unknown group", "admin", "PATCH", "/api/admin/user-groups/999999", `{"name":"x"}`, nil, 404, "not_found", ""},
		{"members of unknown group", "admin", "GET", "/api/admin/user-groups/999999/members", ``, nil, 404, "not_found", ""},
		{"add unknown users", "admin", "POST", "/api/admin/user-groups/1/members", `{"user_ids":[999999]}`, nil, 422, "invalid", "user_ids"},
		{"add nobody", "admin", "POST", "/api/admin/user-groups/1/members", `{"user_ids":[]}`, nil, 422, "invalid", "user_ids"},
		{"add ids as text", "admin", "POST", "/api/admin/user-groups/1/members", `{"user_ids":["2"]}`, nil, 422, "invalid", "user_ids"},
		{"remove a non-member", "admin", "DELETE", "/api/admin/user-groups/1/members/999999", ``, nil, 404, "not_found", ""},
		{"patch package negative count", "admin", "PATCH", "/api/admin/packages/1", `{"count":-1}`, nil, 422, "invalid", "count"},
		{"patch package empty name", "admin", "PATCH", "/api/admin/packages/1", `{"name":""}`, nil, 422, "invalid", "name"},
		{"patch package name too long", "admin", "PATCH", "/api/admin/packages/1", `{"name":"` + strings.Repeat("x", 201) + `"}`, nil, 422, "invalid", "name"},
		{"patch package unknown field", "admin", "PATCH", "/api/admin/packages/1", `{"price":5}`, nil, 422, "invalid", "price"},
		{"patch package malformed", "admin", "PATCH", "/api/admin/packages/1", `{"name":`, nil, 400, "bad_request", ""},
		{"patch unknown package", "admin", "PATCH", "/api/admin/packages/999999", `{"name":"x"}`, nil, 404, "not_found", ""},
		{"retire unknown package", "admin", "POST", "/api/admin/packages/999999/retire", ``, nil, 404, "not_found", ""},
		{"unknown member", "admin", "GET", "/api/admin/members/999999", ``, nil, 404, "not_found", ""},
		{"deactivate unknown member", "admin", "POST", "/api/admin/members/999999/deactivate", ``, nil, 404, "not_found", ""},
		{"search too long", "admin", "GET", "/api/admin/members?q=" + strings.Repeat("a", 101), ``, nil, 422, "invalid", "q"},
	}
	// Every new admin route refuses a member and an anonymous caller (a
	// body-less unsafe request without a bearer token is refused before
	// that, 415, by the same-site JSON rule; these send {}).
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/admin/packages/1", ""}, {"PATCH", "/api/admin/packages/1", `{"name":"x"}`}, {"POST", "/api/admin/packages/1/retire", "{}"},
		{"GET", "/api/admin/user-groups", ""}, {"POST", "/api/admin/user-groups", `{"name":"x"}`}, {"GET", "/api/admin/user-groups/1", ""},
		{"PATCH", "/api/admin/user-groups/1", `{"name":"x"}`}, {"GET", "/api/admin/user-groups/1/members", ""},
		{"POST", "/api/admin/user-groups/1/members", `{"user_ids":[2]}`}, {"DELETE", "/api/admin/user-groups/1/members/2", "{}"},
		{"GET", "/api/admin/members", ""}, {"GET", "/api/admin/members/2", ""},
		{"POST", "/api/admin/members/2/deactivate", "{}"}, {"POST", "/api/admin/members/2/reactivate", "{}"},
	} {
		calls = append(calls,
			call{r.method + " " + r.path + " as a member", "user", r.method, r.path, r.body, nil, 403, "forbidden", ""},
			call{r.method + " " + r.path + " anonymous", "", r.method, r.path, r.body, nil, 401, "unauthenticated", ""})
	}
	for _, path := range []string{"/api/me/bookings", "/api/me/notifications"} {
		calls = append(calls, call{path + " anonymous", "", "GET", path, ``, nil, 401, "unauthenticated", ""},
			call{path + " as the admin token", "admin", "GET", path, ``, nil, 403, "forbidden", ""})
	}
	before := b.counts(t)
	for _, c := range calls {
		status, body, _ := b.do(t, user, c)
		errBody, _ := body["error"].(map[string]any)
		if status != c.status || errBody == nil || errBody["code"] != c.code || (c.field != "" && errBody["field"] != c.field) {
			t.Errorf("%s: %s %s → %d %v; want %d %s field %q", c.name, c.method, c.path, status, body, c.status, c.code, c.field)
		}
	}
	if after := b.counts(t); after != before {
		t.Fatalf("row counts changed by refused requests: %s → %s", before, after)
	}
}

// TestProductAPI: an admin makes a group, adds two members (a second add
// of one is a conflict, and adds nobody), edits and retires a package (a
// retired package cannot be granted), finds members by name, email and
// phone, deactivates one; members read their bookings and notices.
func TestProductAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	user := b.userClient(t, seed.UserEmail, seed.UserPassword)
	do := func(method, path, body string, want int) map[string]any {
		t.Helper()
		st, m, _ := b.do(t, user, call{path, "admin", method, path, body, nil, 0, "", ""})
		if st != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, st, m, want)
		}
		return m
	}
	b.exec(t, `INSERT INTO users (id, name, email, phone) VALUES (901, '최하늘', 'sky@example.com', '010-4321-8765'), (902, 'Kim Dana', 'dana@example.com', '010-9999-0000')`)
	g := do("POST", "/api/admin/user-groups", `{"name":"  새벽반 ","description":"06:00"}`, 201)
	gid := int64(g["id"].(float64))
	path := fmt.Sprintf("/api/admin/user-groups/%d", gid)
	if g["name"] != "새벽반" {
		t.Fatalf("group name %v, want it trimmed", g["name"])
	}
	if g := do("POST", path+"/members", `{"user_ids":[901,902]}`, 200); g["members"] != 2.0 {
		t.Fatalf("after adding two: %v", g)
	}
	do("POST", path+"/members", `{"user_ids":[902]}`, 409)
	if ms := do("GET", path+"/members", ``, 200)["items"].([]any); len(ms) != 2 {
		t.Fatalf("members %v", ms)
	}
	if g := do("PATCH", path, `{"name":"새벽반 A"}`, 200); g["name"] != "새벽반 A" || g["description"] != "06:00" {
		t.Fatalf("patched group %v", g)
	}
	if g := do("DELETE", path+"/members/902", ``, 200); g["members"] != 1.0 {
		t.Fatalf("after removing one: %v", g)
	}
	p := do("PATCH", "/api/admin/packages/1", `{"name":"PT 12회","count":12}`, 200)
	if p["name"] != "PT 12회" || p["count"] != 12.0 {
		t.Fatalf("patched package %v", p)
	}
	if p := do("PATCH", "/api/admin/packages/1", `{"count":null}`, 200); p["count"] != nil || p["name"] != "PT 12회" {
		t.Fatalf("package made unlimited: %v", p)
	}
	do("POST", "/api/admin/packages/1/retire", ``, 200)
	do("POST", "/api/admin/packages/1/retire", ``, 409)
	st, body, _ := b.do(t, user, call{"grant retired", "admin", "POST", "/api/admin/grants", `{"package_id":1,"user_ids":[901]}`, nil, 0, "", ""})
	if e, _ := body["error"].(map[string]any); st != 422 || e["field"] != "package_id" || !strings.Contains(fmt.Sprint(e["message"]), "retired") {
		t.Fatalf("grant of a retired package: %d %v", st, body)
	}
	for q, want := range map[string]string{"하늘": "901", "DANA@": "902", "43218765": "901", "010-9999": "902", "50%": ""} {
		items := do("GET", "/api/admin/members?q="+urlQuery(q), ``, 200)["items"].([]any)
		var got []string
		for _, it := range items {
			got = append(got, fmt.Sprint(it.(map[string]any)["id"]))
		}
		if strings.Join(got, ",") != want {
			t.Errorf("search %q: %v, want %q", q, got, want)
		}
	}
	do("POST", "/api/admin/members/901/deactivate", ``, 200)
	if m := do("GET", "/api/admin/members/901", ``, 200); m["status"] != "INACTIVE" || len(m["groups"].([]any)) != 1 {
		t.Fatalf("deactivated member %v", m)
	}
	// The demo member's own bookings and notices.
	st, mine, _ := b.do(t, user, call{"mine", "user", "GET", "/api/me/bookings?limit=5", ``, nil, 0, "", ""})
	if items, _ := mine["items"].([]any); st != 200 || len(items) == 0 || items[0].(map[string]any)["package_name"] == "" {
		t.Fatalf("my bookings: %d %v", st, mine)
	}
	st, notes, _ := b.do(t, user, call{"notes", "user", "GET", "/api/me/notifications", ``, nil, 0, "", ""})
	if _, ok := notes["items"].([]any); st != 200 || !ok {
		t.Fatalf("my notices: %d %v", st, notes)
	}
}

// TestProductPagingStable: paging members (oldest first) and a member's
// bookings (newest first) by cursor neither repeats nor skips a row while
// rows are inserted between pages.
func TestProductPagingStable(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	user := b.userClient(t, seed.UserEmail, seed.UserPassword)
	walk := func(who, path string, insert func(int)) []string {
		var seen []string
		after := ""
		for page := 0; page < 100; page++ {
			st, m, _ := b.do(t, user, call{path, who, "GET", path + "&after=" + after, ``, nil, 0, "", ""})
			if st != 200 {
				t.Fatalf("%s: %d %v", path, st, m)
			}
			for _, it := range m["items"].([]any) {
				seen = append(seen, fmt.Sprint(it.(map[string]any)["id"]))
			}
			next, ok := m["next_after"]
			if !ok {
				return seen
			}
			after = fmt.Sprint(int64(next.(float64)))
			insert(page)
		}
		t.Fatal("paging did not end")
		return nil
	}
	var before []string
	_ = b.db.NewRaw("SELECT id::text FROM users ORDER BY users.id").Scan(context.Background(), &before)
	got := walk("admin", "/api/admin/members?limit=3", func(i int) {
		b.exec(t, "INSERT INTO users (name, email) VALUES (?, ?)", fmt.Sprint("new ", i), fmt.Sprintf("new%d@example.com", i))
	})
	if !isPrefixSet(before, got) || hasDuplicates(got) {
		t.Fatalf("members paged %v; want every one of %v once (new ones may follow)", got, before)
	}
	var mine []string
	_ = b.db.NewRaw("SELECT b.id::text FROM booking b JOIN users u ON u.id = b.user_id WHERE u.email = ? ORDER BY b.id DESC", seed.UserEmail).Scan(context.Background(), &mine)
	got = walk("user", "/api/me/bookings?limit=2", func(int) {
		b.exec(t, `INSERT INTO booking (pass_id, user_id, status, started_at, ended_at)
			SELECT p.id, p.user_id, 'READY', now() + interval '1 day', now() + interval '1 day 50 minutes' FROM pass p JOIN users u ON u.id = p.user_id WHERE u.email = ? LIMIT 1`, seed.UserEmail)
	})
	if strings.Join(got, ",") != strings.Join(mine, ",") {
		t.Fatalf("my bookings paged %v, want %v (the ones booked meanwhile come on a fresh first page)", got, mine)
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", "@", "%40", " ", "%20").Replace(s)
}

func isPrefixSet(want, got []string) bool {
	if len(got) < len(want) {
		return false
	}
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func hasDuplicates(s []string) bool {
	seen := map[string]bool{}
	for _, v := range s {
		if seen[v] {
			return true
		}
		seen[v] = true
	}
	return false
}

// TestLanguageSwitch: /lang/en remembers English in a cookie and goes back
// where it was asked to, never off the site; an unknown language is 404.
func TestLanguageSwitch(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for next, want := range map[string]string{"/login?x=1": "/login?x=1", "//evil.example/": "/", "https://evil.example/": "/"} {
		resp, err := noFollow.Get(b.url + "/lang/en?next=" + url.QueryEscape(next))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var cookie string
		for _, c := range resp.Cookies() {
			if c.Name == "lang" {
				cookie = c.Value
			}
		}
		if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != want || cookie != "en" {
			t.Errorf("next %q: %d → %q, cookie %q; want a redirect to %q and lang=en", next, resp.StatusCode, resp.Header.Get("Location"), cookie, want)
		}
	}
	req, _ := http.NewRequest("GET", b.url+"/login", nil)
	req.AddCookie(&http.Cookie{Name: "lang", Value: "en"})
	req.Header.Set("Accept-Language", "ko-KR")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `<html lang="en">`) {
		t.Errorf("the remembered English does not win over a Korean browser")
	}
	if resp, _ := noFollow.Get(b.url + "/lang/fr"); resp == nil || resp.StatusCode != 404 {
		t.Errorf("/lang/fr: %v, want 404", resp)
	}
}

// TestAddMemberConcurrently: ten simultaneous adds of the same user to a
// group: one succeeds, the others are conflicts, none is a server error,
// and the user is in the group once.
func TestAddMemberConcurrently(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	b.exec(t, `INSERT INTO user_group (id, name) VALUES (700, 'race'); INSERT INTO users (id, name, email) VALUES (701, 'r', 'r@example.com')`)
	statuses := make(chan int, 10)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", b.url+"/api/admin/user-groups/700/members", strings.NewReader(`{"user_ids":[701]}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+adminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	var n int
	_ = b.db.NewRaw("SELECT count(*) FROM user_group_mapping WHERE user_group_id = 700").Scan(context.Background(), &n)
	if count[200] != 1 || count[409] != 9 || n != 1 {
		t.Fatalf("statuses %v, %d memberships; want one 200, nine 409 and one membership", count, n)
	}
}

// TestMembersSeeNoProviderErrors: a notice the provider refused shows the
// member a plain status (delivery "failed"), never the provider's raw
// answer, in /api/me/notifications and in the pass cards' notices.
func TestMembersSeeNoProviderErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	user := b.userClient(t, seed.UserEmail, seed.UserPassword)
	const raw = "webhook: 400 Bad Request: {\"detail\":\"api_key sk_live_9f8e7d is over quota\"}"
	var pass int64
	if err := b.db.NewRaw(`SELECT p.id FROM pass p JOIN users u ON u.id = p.user_id WHERE u.email = ? ORDER BY p.id LIMIT 1`, seed.UserEmail).Scan(context.Background(), &pass); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ExecContext(context.Background(), `INSERT INTO notification (user_id, event, dedup_key, text, error)
		SELECT id, 'BEFORE_EXPIRY', ?, '이용권 만료 예정', ? FROM users WHERE email = ?`, fmt.Sprintf("before-expiry:pass:%d:days", pass), raw, seed.UserEmail); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/me/notifications", "/api/me/passes"} {
		req, _ := http.NewRequest("GET", b.url+path, nil)
		resp, err := user.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "sk_live") || strings.Contains(string(body), "Bad Request") {
			t.Fatalf("%s shows the member the provider's raw error: %s", path, body)
		}
		if !strings.Contains(string(body), `"delivery":"failed"`) {
			t.Fatalf("%s does not say the notice failed: %s", path, body)
		}
	}
}
