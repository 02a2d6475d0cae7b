package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/tasks"
	"github.com/passbatch/passbatch/web"
)

// member is a logged-in member with one pass.
type member struct {
	id, pass int64
	client   *http.Client
}

// members makes n members, each with a PROGRESSED pass of uses (nil:
// unlimited) valid for 60 days, and logs them in.
func (b *bundle) members(t *testing.T, n int, uses *int) []member {
	t.Helper()
	ctx := context.Background()
	hash, _ := bcrypt.GenerateFromPassword([]byte("member-password"), bcrypt.MinCost)
	tag := fmt.Sprint(time.Now().UnixNano())
	var pkg int64
	count := uses
	if uses != nil && *uses < 1 {
		count = new(1) // the package's count; the pass has used it up
	}
	if err := b.db.NewRaw(`INSERT INTO package (name, count, period_days) VALUES ('test classes', ?, 60) RETURNING id`, count).Scan(ctx, &pkg); err != nil {
		t.Fatal(err)
	}
	out := make([]member, n)
	for i := range out {
		email := fmt.Sprintf("m%d-%s@test", i, tag)
		if err := b.db.NewRaw(`INSERT INTO users (name, email, password_hash) VALUES (?, ?, ?) RETURNING id`, fmt.Sprintf("회원%d", i), email, string(hash)).Scan(ctx, &out[i].id); err != nil {
			t.Fatal(err)
		}
		if err := b.db.NewRaw(`INSERT INTO pass (package_id, user_id, status, remaining_count, started_at, ended_at)
			VALUES (?, ?, 'PROGRESSED', ?, now() - interval '1 day', now() + interval '59 days') RETURNING id`, pkg, out[i].id, uses).Scan(ctx, &out[i].pass); err != nil {
			t.Fatal(err)
		}
		out[i].client = b.userClient(t, email, "member-password")
	}
	return out
}

// class creates a class starting in `in` (one hour long) with capacity seats
// through the admin API and returns its id.
func (b *bundle) class(t *testing.T, in time.Duration, capacity int) int64 {
	t.Helper()
	start := time.Now().Add(in).UTC().Truncate(time.Minute)
	body := fmt.Sprintf(`{"title":"필라테스 기초","trainer":"김코치","place":"A룸","started_at":%q,"ended_at":%q,"capacity":%d}`,
		start.Format(time.RFC3339), start.Add(time.Hour).Format(time.RFC3339), capacity)
	st, got, _ := b.do(t, nil, call{"class", "admin", "POST", "/api/admin/classes", body, nil, 0, "", ""})
	items, _ := got["items"].([]any)
	if st != 201 || len(items) != 1 {
		t.Fatalf("create class: %d %v", st, got)
	}
	return int64(items[0].(map[string]any)["id"].(float64))
}

// book posts a booking as m and returns the status and answer.
func (b *bundle) book(t *testing.T, m member, class, pass int64, key string) (int, map[string]any) {
	t.Helper()
	h := map[string]string{"Origin": b.url} // the API guard's same-origin check
	if key != "" {
		h["Idempotency-Key"] = key
	}
	st, got, _ := b.do(t, m.client, call{"book", "user", "POST", "/api/me/bookings", fmt.Sprintf(`{"class_id":%d,"pass_id":%d}`, class, pass), h, 0, "", ""})
	return st, got
}

func errorMessage(got map[string]any) string {
	e, _ := got["error"].(map[string]any)
	return fmt.Sprint(e["message"])
}

// TestLastSeatsUnderConcurrency: 50 members booking the last 10 seats at
// once get exactly 10 bookings and 40 clear refusals.
func TestLastSeatsUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ms := b.members(t, 50, nil)
	class := b.class(t, 24*time.Hour, 10)
	var ok, full atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, m := range ms {
		wg.Go(func() {
			<-start
			st, got := b.book(t, m, class, m.pass, "")
			switch {
			case st == 201:
				ok.Add(1)
			case st == 409 && strings.Contains(errorMessage(got), "the class is full"):
				full.Add(1)
			default:
				t.Errorf("booking: %d %v", st, got)
			}
		})
	}
	close(start)
	wg.Wait()
	var booked, rows int
	_ = b.db.NewRaw(`SELECT booked, (SELECT count(*) FROM booking WHERE class_id = class.id AND status = 'READY') FROM class WHERE id = ?`, class).Scan(context.Background(), &booked, &rows)
	if ok.Load() != 10 || full.Load() != 40 || booked != 10 || rows != 10 {
		t.Fatalf("%d booked and %d refused as full; the class counts %d, %d booking rows; want 10, 40, 10, 10", ok.Load(), full.Load(), booked, rows)
	}
}

// TestOneMemberBookingTwiceAtOnce: the same member booking one class ten
// times at once gets one booking.
func TestOneMemberBookingTwiceAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	m := b.members(t, 1, nil)[0]
	class := b.class(t, 24*time.Hour, 20)
	var ok, dup atomic.Int64
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			st, got := b.book(t, m, class, m.pass, "")
			switch {
			case st == 201:
				ok.Add(1)
			case st == 409 && strings.Contains(errorMessage(got), "booked this class already"):
				dup.Add(1)
			default:
				t.Errorf("booking: %d %v", st, got)
			}
		})
	}
	wg.Wait()
	var booked int
	_ = b.db.NewRaw(`SELECT booked FROM class WHERE id = ?`, class).Scan(context.Background(), &booked)
	if ok.Load() != 1 || dup.Load() != 9 || booked != 1 {
		t.Fatalf("%d booked, %d refused as repeats, class counts %d; want 1, 9, 1", ok.Load(), dup.Load(), booked)
	}
}

// TestRaceForAPassLastUse: two bookings (of two classes) racing for a
// pass's last use get one, round after round; a use booked and not yet
// deducted counts.
func TestRaceForAPassLastUse(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	one := 1
	for round := range 5 {
		m := b.members(t, 1, &one)[0]
		classes := []int64{b.class(t, 24*time.Hour, 5), b.class(t, 48*time.Hour, 5)}
		var ok, none atomic.Int64
		var wg sync.WaitGroup
		for _, c := range classes {
			wg.Go(func() {
				st, got := b.book(t, m, c, m.pass, "")
				switch {
				case st == 201:
					ok.Add(1)
				case st == 409 && strings.Contains(errorMessage(got), "no use left"):
					none.Add(1)
				default:
					t.Errorf("booking: %d %v", st, got)
				}
			})
		}
		wg.Wait()
		if ok.Load() != 1 || none.Load() != 1 {
			t.Fatalf("round %d: %d booked, %d refused for want of uses; want 1 and 1", round, ok.Load(), none.Load())
		}
	}
}

// TestBookingRefusals: every bad booking or cancellation is a 4xx with a
// clear message and changes nothing; an Idempotency-Key repeat is the first
// answer; a member cancels until the cutoff.
func TestBookingRefusals(t *testing.T) {
	t.Parallel()
	clock := atomic.Pointer[time.Time]{}
	now := time.Now()
	clock.Store(&now)
	b := setupOpts(t, func(o *web.Options) {
		o.BookingCancelCutoff = time.Hour
		o.Now = func() time.Time { return *clock.Load() }
	})
	ctx := context.Background()
	zero := 0
	ms := b.members(t, 3, nil)
	used := b.members(t, 1, &zero)[0] // a pass with no uses
	open := b.class(t, 24*time.Hour, 1)
	soon := b.class(t, 30*time.Minute, 5)
	cancelled := b.class(t, 24*time.Hour, 5)
	if st, got, _ := b.do(t, nil, call{"cancel class", "admin", "POST", fmt.Sprintf("/api/admin/classes/%d/cancel", cancelled), "{}", nil, 0, "", ""}); st != 200 {
		t.Fatalf("cancel class: %d %v", st, got)
	}
	b.exec(t, `UPDATE pass SET status = 'EXPIRED', expired_at = now() WHERE id = ?`, ms[2].pass)

	// The first booking, then its repeat by key.
	st, first := b.book(t, ms[0], open, ms[0].pass, "k-1")
	if st != 201 || first["class_title"] != "필라테스 기초" {
		t.Fatalf("booking: %d %v", st, first)
	}
	if st, again := b.book(t, ms[0], open, ms[0].pass, "k-1"); st != 201 || again["id"] != first["id"] {
		t.Fatalf("the same Idempotency-Key again: %d %v, want the first answer %v", st, again, first["id"])
	}
	for _, c := range []struct {
		name    string
		m       member
		class   int64
		pass    int64
		status  int
		message string
	}{
		{"full", ms[1], open, ms[1].pass, 409, "the class is full"},
		{"someone else's pass", ms[1], soon, ms[0].pass, 422, "not a pass of yours"},
		{"expired pass", ms[2], soon, ms[2].pass, 409, "the pass is EXPIRED"},
		{"used-up pass", used, soon, used.pass, 409, "no use left"},
		{"cancelled class", ms[1], cancelled, ms[1].pass, 409, "the class was cancelled"},
		{"unknown class", ms[1], 999999, ms[1].pass, 404, "class"},
	} {
		st, got := b.book(t, c.m, c.class, c.pass, "")
		if st != c.status || !strings.Contains(errorMessage(got), c.message) {
			t.Errorf("%s: %d %v, want %d saying %q", c.name, st, got, c.status, c.message)
		}
	}
	if st, got, _ := b.do(t, ms[1].client, call{"no class", "user", "POST", "/api/me/bookings", `{"pass_id":1}`, map[string]string{"Origin": b.url}, 0, "", ""}); st != 422 {
		t.Errorf("no class_id: %d %v", st, got)
	}
	// The class that starts in 30 minutes: booked, then past the cutoff.
	st, late := b.book(t, ms[1], soon, ms[1].pass, "")
	if st != 201 {
		t.Fatalf("booking a class starting in 30 min: %d %v", st, late)
	}
	del := func(m member, id any) (int, map[string]any) {
		st, got, _ := b.do(t, m.client, call{"cancel", "user", "DELETE", fmt.Sprintf("/api/me/bookings/%v", id), "{}", map[string]string{"Origin": b.url}, 0, "", ""})
		return st, got
	}
	if st, got := del(ms[1], late["id"]); st != 409 || !strings.Contains(errorMessage(got), "until 1h0m0s before") {
		t.Errorf("cancelling 30 min before: %d %v, want 409 (cutoff)", st, got)
	}
	if st, got := del(ms[1], first["id"]); st != 404 {
		t.Errorf("cancelling someone else's booking: %d %v, want 404", st, got)
	}
	if st, got := del(ms[0], first["id"]); st != 200 || got["status"] != "CANCELLED" {
		t.Errorf("cancelling a day before: %d %v", st, got)
	}
	// The seat is free again: the other member takes it.
	if st, got := b.book(t, ms[1], open, ms[1].pass, ""); st != 201 {
		t.Errorf("the freed seat: %d %v", st, got)
	}
	// A class that started refuses bookings.
	later := now.Add(2 * time.Hour)
	clock.Store(&later)
	if st, got := b.book(t, ms[0], soon, ms[0].pass, ""); st != 409 || !strings.Contains(errorMessage(got), "has started") {
		t.Errorf("booking a started class: %d %v", st, got)
	}
	// A deactivated member's session ends: no booking.
	b.exec(t, `UPDATE users SET status = 'INACTIVE' WHERE id = ?`, ms[0].id)
	if st, got := b.book(t, ms[0], open, ms[0].pass, ""); st != 401 {
		t.Errorf("a deactivated member booking: %d %v, want 401", st, got)
	}
	var n int
	_ = b.db.NewRaw(`SELECT count(*) FROM booking WHERE class_id IN (?, ?, ?)`, open, soon, cancelled).Scan(ctx, &n)
	if n != 3 { // first (cancelled), late, the freed seat
		t.Fatalf("%d booking rows, want 3: a refusal changed something", n)
	}
}

// TestClassToStatistics: a class booked through the API is cancelled for
// no one, attended, completed and deducted once by use-passes at its end,
// and counted by make-statistics; a cancelled class's members get one
// notice each, sent by notify-before-class.
func TestClassToStatistics(t *testing.T) {
	t.Parallel()
	clock := atomic.Pointer[time.Time]{}
	now := time.Now()
	clock.Store(&now)
	b := newBundle(t, true, func(o *web.Options) { o.LoginLimit = 1000; o.Now = func() time.Time { return *clock.Load() } })
	ctx := context.Background()
	five := 5
	ms := b.members(t, 3, &five)
	class := b.class(t, 3*time.Hour, 10)
	dropped := b.class(t, 5*time.Hour, 10)
	for _, m := range ms {
		for _, c := range []int64{class, dropped} {
			if st, got := b.book(t, m, c, m.pass, ""); st != 201 {
				t.Fatalf("book: %d %v", st, got)
			}
		}
	}
	// Cancelling a class frees its seats and tells each member once.
	st, got, _ := b.do(t, nil, call{"cancel", "admin", "POST", fmt.Sprintf("/api/admin/classes/%d/cancel", dropped), "{}", nil, 0, "", ""})
	if st != 200 || got["cancelled_bookings"] != float64(3) {
		t.Fatalf("cancel class: %d %v", st, got)
	}
	if st, _, _ := b.do(t, nil, call{"again", "admin", "POST", fmt.Sprintf("/api/admin/classes/%d/cancel", dropped), "{}", nil, 0, "", ""}); st != 409 {
		t.Fatalf("cancelling twice: %d, want 409", st)
	}
	// Attendance before the class starts is refused; after, two of three.
	att := fmt.Sprintf(`{"attended":[%d,%d]}`, ms[0].id, ms[1].id)
	path := fmt.Sprintf("/api/admin/classes/%d/attendance", class)
	if st, _, _ := b.do(t, nil, call{"early", "admin", "PUT", path, att, nil, 0, "", ""}); st != 409 {
		t.Fatalf("attendance before the start: %d, want 409", st)
	}
	after := now.Add(5 * time.Hour)
	clock.Store(&after)
	if st, got, _ := b.do(t, nil, call{"attendance", "admin", "PUT", path, att, nil, 0, "", ""}); st != 200 || got["attended"] != float64(2) {
		t.Fatalf("attendance: %d %v", st, got)
	}
	run := func(job string, p batch.Params) {
		je, err := b.engine.Launch(ctx, job, p)
		if err != nil {
			t.Fatal(err)
		}
		if st := b.waitExecution(t, je.JobExecutionID); st != "COMPLETED" {
			t.Fatalf("%s: %s", job, st)
		}
	}
	at := func(t time.Time) batch.Params {
		return batch.Params{batch.ParamRunAt: {Value: t.UTC().Format(time.RFC3339), Identifying: true}}
	}
	run(tasks.JobNotifyBeforeClass, at(now))
	run(tasks.JobUsePasses, at(after))
	run(tasks.JobUsePasses, at(after.Add(time.Minute))) // a second run deducts nothing
	var sent, remaining, completed, attended int
	_ = b.db.NewRaw(`SELECT count(*) FROM notification WHERE event = 'CLASS_CANCELLED' AND sent`).Scan(ctx, &sent)
	_ = b.db.NewRaw(`SELECT sum(remaining_count) FROM pass WHERE id IN (?, ?, ?)`, ms[0].pass, ms[1].pass, ms[2].pass).Scan(ctx, &remaining)
	_ = b.db.NewRaw(`SELECT count(*) FILTER (WHERE status = 'COMPLETED' AND used_pass), count(*) FILTER (WHERE attended) FROM booking WHERE class_id = ?`, class).Scan(ctx, &completed, &attended)
	if sent != 3 || remaining != 3*4 || completed != 3 || attended != 2 {
		t.Fatalf("cancellation notices sent %d (want 3), uses left %d (want 12: one each), bookings completed and used %d (want 3), attended %d (want 2)",
			sent, remaining, completed, attended)
	}
	var start time.Time
	_ = b.db.NewRaw(`SELECT started_at FROM class WHERE id = ?`, class).Scan(ctx, &start)
	hour := start.Add(time.Hour).UTC().Truncate(time.Hour)
	run(tasks.JobMakeStatistics, batch.Params{tasks.ParamFrom: {Value: hour.Add(-time.Hour).Format(time.RFC3339), Identifying: true},
		tasks.ParamTo: {Value: hour.Add(2 * time.Hour).Format(time.RFC3339), Identifying: true}})
	var counted int
	_ = b.db.NewRaw(`SELECT coalesce(sum(attended_count), 0) FROM statistics WHERE statistics_at >= ? AND statistics_at < ?`, hour.Add(-time.Hour), hour.Add(2*time.Hour)).Scan(ctx, &counted)
	if counted != 2 {
		t.Fatalf("statistics count %d attended, want 2", counted)
	}
}

// TestClassAdminRefusals: bad classes are 422s on their field, edits the
// class's state forbids are 409s, and nothing changes.
func TestClassAdminRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	m := b.members(t, 2, nil)
	class := b.class(t, 24*time.Hour, 5)
	for _, mm := range m {
		if st, got := b.book(t, mm, class, mm.pass, ""); st != 201 {
			t.Fatalf("book: %d %v", st, got)
		}
	}
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Minute)
	body := func(start, end time.Time, capacity, weeks int) string {
		return fmt.Sprintf(`{"title":"요가","started_at":%q,"ended_at":%q,"capacity":%d,"repeat_weeks":%d}`,
			start.Format(time.RFC3339), end.Format(time.RFC3339), capacity, weeks)
	}
	var before int
	_ = b.db.NewRaw(`SELECT count(*) FROM class`).Scan(context.Background(), &before)
	path := fmt.Sprintf("/api/admin/classes/%d", class)
	for _, c := range []call{
		{"no seats", "admin", "POST", "/api/admin/classes", body(at, at.Add(time.Hour), 0, 1), nil, 422, "invalid", "capacity"},
		{"ends first", "admin", "POST", "/api/admin/classes", body(at, at.Add(-time.Hour), 5, 1), nil, 422, "invalid", "ended_at"},
		{"in the past", "admin", "POST", "/api/admin/classes", body(time.Now().Add(-time.Hour), time.Now(), 5, 1), nil, 422, "invalid", "started_at"},
		{"too many weeks", "admin", "POST", "/api/admin/classes", body(at, at.Add(time.Hour), 5, 53), nil, 422, "invalid", "repeat_weeks"},
		{"no title", "admin", "POST", "/api/admin/classes", `{"capacity":3}`, nil, 422, "invalid", "title"},
		{"below the booked", "admin", "PUT", path, body(at, at.Add(time.Hour), 1, 0), nil, 422, "invalid", "capacity"},
		{"as a member", "", "POST", "/api/admin/classes", body(at, at.Add(time.Hour), 5, 1), nil, 401, "unauthenticated", ""},
		{"unknown class", "admin", "POST", "/api/admin/classes/999999/cancel", "{}", nil, 404, "not_found", ""},
	} {
		st, got, _ := b.do(t, nil, c)
		e, _ := got["error"].(map[string]any)
		if st != c.status || e == nil || e["code"] != c.code || (c.field != "" && e["field"] != c.field) {
			t.Errorf("%s: %d %v, want %d %s on %q", c.name, st, got, c.status, c.code, c.field)
		}
	}
	var after int
	_ = b.db.NewRaw(`SELECT count(*) FROM class`).Scan(context.Background(), &after)
	if after != before {
		t.Fatalf("%d classes after refusals, %d before", after, before)
	}
	// A weekly series, then an edit that moves the bookings with the class.
	if st, got, _ := b.do(t, nil, call{"series", "admin", "POST", "/api/admin/classes", body(at, at.Add(time.Hour), 5, 4), nil, 0, "", ""}); st != 201 || len(got["items"].([]any)) != 4 {
		t.Fatalf("a 4-week series: %d %v", st, got)
	}
	moved := at.Add(2 * time.Hour)
	if st, got, _ := b.do(t, nil, call{"edit", "admin", "PUT", path, body(moved, moved.Add(time.Hour), 8, 0), nil, 0, "", ""}); st != 200 || got["capacity"] != float64(8) {
		t.Fatalf("edit: %d %v", st, got)
	}
	var off int
	_ = b.db.NewRaw(`SELECT count(*) FROM booking WHERE class_id = ? AND started_at <> ?`, class, moved).Scan(context.Background(), &off)
	if off != 0 {
		t.Fatalf("%d bookings did not move with their class", off)
	}
	b.do(t, nil, call{"cancel", "admin", "POST", path + "/cancel", "{}", nil, 0, "", ""})
	if st, _, _ := b.do(t, nil, call{"edit cancelled", "admin", "PUT", path, body(moved, moved.Add(time.Hour), 8, 0), nil, 0, "", ""}); st != 409 {
		t.Fatalf("editing a cancelled class: %d, want 409", st)
	}
}
