package seed_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/seed"
)

func TestDemo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	now := time.Date(2026, 11, 24, 10, 17, 0, 0, time.UTC)
	res, err := seed.Demo(ctx, db.DB, now)
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	if err := db.NewRaw("SELECT DISTINCT status FROM pass ORDER BY 1").Scan(ctx, &statuses); err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 3 {
		t.Fatalf("pass statuses %v, want all three", statuses)
	}
	var admin models.User
	if err := db.NewSelect().Model(&admin).Where("email = ?", seed.AdminEmail).Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if admin.Role != models.RoleAdmin || bcrypt.CompareHashAndPassword([]byte(admin.PasswordHash), []byte(res.AdminPassword)) != nil {
		t.Fatalf("admin %+v does not verify with the printed password", admin)
	}
	// Every job finds work right after the seed.
	checks := map[string]string{
		"expire (ended or used up)":  "SELECT count(*) FROM pass WHERE status = 'PROGRESSED' AND (ended_at <= ? OR remaining_count = 0)",
		"start (READY soon)":         "SELECT count(*) FROM pass WHERE status = 'READY' AND started_at <= ?::timestamptz + interval '2 minutes'",
		"add-passes":                 "SELECT count(*) FROM bulk_pass WHERE status = 'READY' AND started_at <= ?::timestamptz + interval '3 minutes'",
		"use-passes":                 "SELECT count(*) FROM booking WHERE status = 'COMPLETED' AND NOT used_pass AND ended_at <= ?",
		"notify-before-class":        "SELECT count(*) FROM booking WHERE status = 'READY' AND started_at > ? AND started_at <= ?::timestamptz + interval '10 minutes'",
		"statistics (previous hour)": "SELECT count(*) FROM booking WHERE ended_at >= date_trunc('hour', ?::timestamptz) - interval '1 hour' AND ended_at < date_trunc('hour', ?::timestamptz)",
		"notify-before-expiry":       "SELECT count(*) FROM pass WHERE status = 'PROGRESSED' AND (ended_at BETWEEN ? AND ?::timestamptz + interval '3 days' OR remaining_count <= 1)",
	}
	for name, q := range checks {
		var n int
		args := []any{now}
		if name == "notify-before-class" || name == "notify-before-expiry" || name == "statistics (previous hour)" {
			args = append(args, now)
		}
		if err := db.NewRaw(q, args...).Scan(ctx, &n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n == 0 {
			t.Errorf("%s: no rows for the job to work on", name)
		}
	}
	var mismatched int
	if err := db.NewRaw("SELECT count(*) FROM booking b JOIN pass p ON p.id = b.pass_id WHERE b.user_id <> p.user_id").Scan(ctx, &mismatched); err != nil || mismatched != 0 {
		t.Fatalf("%d bookings on another user's pass (%v)", mismatched, err)
	}
	before := count(t, db, "booking")
	if _, err := seed.Demo(ctx, db.DB, now); !errors.Is(err, seed.ErrNotEmpty) {
		t.Fatalf("second demo seed: %v, want ErrNotEmpty", err)
	}
	// Two weeks of classes ahead, booked through the service: every class
	// counts exactly its live bookings.
	var off int
	if err := db.NewRaw(`SELECT count(*) FROM class c WHERE c.booked <> (SELECT count(*) FROM booking b WHERE b.class_id = c.id AND b.status <> 'CANCELLED')`).Scan(ctx, &off); err != nil ||
		off != 0 || res.Classes != 2*7*5 || res.ClassBookings < 30 || res.PastClasses != seed.HistoryDays*5 || res.PastBookings < 20*res.PastClasses/4 {
		t.Fatalf("timetable: %d classes, %d bookings, %d classes miscounting their seats (%v)", res.Classes, res.ClassBookings, off, err)
	}
	if after := count(t, db, "booking"); after != before || before != res.Bookings+res.ClassBookings+res.PastBookings {
		t.Fatalf("bookings %d → %d, reported %d", before, after, res.Bookings)
	}
}

func count(t *testing.T, db *testenv.DB, table string) int {
	t.Helper()
	var n int
	if err := db.NewRaw("SELECT count(*) FROM "+table).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBulk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	now := time.Date(2026, 11, 24, 10, 17, 0, 0, time.UTC)
	for round := 1; round <= 2; round++ {
		res, err := seed.Bulk(ctx, db.DB, seed.BulkOptions{Users: 2000, Bookings: 20000, PassesPerUser: 2, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if res.Users != 2000 || res.Passes != 4000 || res.Bookings != 20000 {
			t.Fatalf("result %+v", res)
		}
		if u, p, b := count(t, db, "users"), count(t, db, "pass"), count(t, db, "booking"); u != 2000*round || p != 4000*round || b != 20000*round {
			t.Fatalf("round %d: users %d passes %d bookings %d", round, u, p, b)
		}
	}
	var bad int
	if err := db.NewRaw("SELECT count(*) FROM booking b JOIN pass p ON p.id = b.pass_id WHERE b.user_id <> p.user_id").Scan(ctx, &bad); err != nil || bad != 0 {
		t.Fatalf("%d bookings on another user's pass (%v)", bad, err)
	}
	if err := db.NewRaw(`SELECT count(*) FROM pass p WHERE p.remaining_count IS NOT NULL AND p.remaining_count <
		(SELECT count(*) FROM booking b WHERE b.pass_id = p.id AND b.status = 'COMPLETED' AND NOT b.used_pass)`).Scan(ctx, &bad); err != nil || bad != 0 {
		t.Fatalf("%d passes with fewer uses left than bookings to deduct (%v)", bad, err)
	}
	var work int
	if err := db.NewRaw("SELECT count(*) FROM booking WHERE status = 'COMPLETED' AND NOT used_pass AND ended_at <= ?", now).Scan(ctx, &work); err != nil || work < 20000 {
		t.Fatalf("use-passes work %d, want most of the 40000 bookings (%v)", work, err)
	}
	// A new row after the COPY takes the next id: the sequences moved on.
	if _, err := db.ExecContext(ctx, "INSERT INTO users (name, email) VALUES ('x', 'after-bulk@x')"); err != nil {
		t.Fatal(err)
	}
}
