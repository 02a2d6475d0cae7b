// Package seed loads data into a passbatch database: a small demo gym whose
// rows sit around the current time so that every job finds work within its
// first minutes, and large synthetic data sets for benchmarks.
package seed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"golang.org/x/crypto/bcrypt"

	"github.com/passbatch/passbatch/models"
)

// ErrNotEmpty is returned by Demo when the database already has users.
var ErrNotEmpty = errors.New("the database already has users; the demo seed only loads into an empty one")

// Demo credentials, printed by ptctl seed.
const (
	AdminEmail    = "admin@passbatch.local"
	AdminPassword = "admin1234!"
	UserEmail     = "user@passbatch.local"
	UserPassword  = "user1234!"
)

// DemoResult says what Demo loaded.
type DemoResult struct {
	AdminEmail, AdminPassword string
	UserEmail, UserPassword   string
	Packages, Users, Groups   int
	Passes, BulkPasses        int
	Bookings                  int
	// Classes on the timetable ahead, and the bookings made of them.
	Classes, ClassBookings int
	// The month's classes behind, and their bookings.
	PastClasses, PastBookings int
}

// IsEmpty reports whether the users table has no rows.
func IsEmpty(ctx context.Context, db bun.IDB) (bool, error) {
	n, err := db.NewSelect().Model((*models.User)(nil)).Limit(1).Count(ctx)
	if err != nil {
		return false, fmt.Errorf("count users: %w", err)
	}
	return n == 0, nil
}

func ptr[T any](v T) *T { return &v }

// Demo loads the demo gym relative to now: its members, packages, passes
// and recorded bookings in one transaction, then its month of classes
// behind and two weeks ahead through the booking service (PastClasses,
// Timetable).
func Demo(ctx context.Context, db *bun.DB, now time.Time) (*DemoResult, error) {
	g := &demoGym{now: now.Truncate(time.Second),
		res: &DemoResult{AdminEmail: AdminEmail, AdminPassword: AdminPassword, UserEmail: UserEmail, UserPassword: UserPassword}}
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		empty, err := IsEmpty(ctx, tx)
		if err != nil {
			return err
		}
		if !empty {
			return ErrNotEmpty
		}
		g.tx = tx
		for _, stage := range []func(context.Context) error{g.packages, g.people, g.grants, g.passes, g.bookings} {
			if err := stage(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res := g.res
	if res.PastClasses, res.PastBookings, err = PastClasses(ctx, db, g.now); err != nil {
		return nil, err
	}
	if res.Classes, res.ClassBookings, err = Timetable(ctx, db, g.now); err != nil {
		return nil, err
	}
	return res, nil
}

// demoGym is one Demo load: its stages in order share the rows made.
type demoGym struct {
	tx           bun.Tx
	now          time.Time
	res          *DemoResult
	pkgs         []*models.Package
	users        []*models.User
	demo         *models.User
	members      []*models.User
	groups       []*models.UserGroup
	bulks        []*models.BulkPass
	all          []*models.Pass
	dMain, dSoon *models.Pass
}

func (g *demoGym) packages(ctx context.Context) error {
	tx := g.tx
	g.pkgs = []*models.Package{
		{Name: "PT 10회 · 60일", Count: ptr(10), PeriodDays: ptr(60)},
		{Name: "PT 30회 · 180일", Count: ptr(30), PeriodDays: ptr(180)},
		{Name: "요가 20회 · 90일", Count: ptr(20), PeriodDays: ptr(90)},
		{Name: "무제한 상담", Count: nil, PeriodDays: nil},
	}
	if _, err := tx.NewInsert().Model(&g.pkgs).Returning("id").Exec(ctx); err != nil {
		return fmt.Errorf("insert packages: %w", err)
	}
	g.res.Packages = len(g.pkgs)
	return nil
}

func (g *demoGym) people(ctx context.Context) error {
	tx := g.tx
	adminHash, err := bcrypt.GenerateFromPassword([]byte(AdminPassword), 10)
	if err != nil {
		return err
	}
	userHash, err := bcrypt.GenerateFromPassword([]byte(UserPassword), 10)
	if err != nil {
		return err
	}
	names := []string{"이서준", "박지호", "최하은", "정도윤", "강서연", "조예준", "윤지우", "장시우", "임수아", "한주원",
		"오지민", "서하준", "신채원", "권건우", "황서윤", "안우진", "송다은", "류현우", "전지아", "홍민준"}
	users := []*models.User{
		{Name: "관리자", Email: AdminEmail, Phone: "010-0000-0000", PasswordHash: string(adminHash), Role: models.RoleAdmin, Status: models.UserActive},
		{Name: "김민지", Email: UserEmail, Phone: "010-1234-5678", PasswordHash: string(userHash), Role: models.RoleUser, Status: models.UserActive},
	}
	for i, n := range names {
		users = append(users, &models.User{Name: n, Email: fmt.Sprintf("member%02d@passbatch.local", i+1),
			Phone: fmt.Sprintf("010-%04d-%04d", 2000+i, 3000+i), PasswordHash: string(userHash), Role: models.RoleUser, Status: models.UserActive})
	}
	if _, err := tx.NewInsert().Model(&users).Returning("id").Exec(ctx); err != nil {
		return fmt.Errorf("insert users: %w", err)
	}
	demo := users[1]
	members := users[1:]
	groups := []*models.UserGroup{
		{Name: "2026 신규 회원", Description: "올해 가입한 회원"},
		{Name: "기업 제휴 A", Description: "제휴사 임직원"},
	}
	if _, err := tx.NewInsert().Model(&groups).Returning("id").Exec(ctx); err != nil {
		return fmt.Errorf("insert groups: %w", err)
	}
	var maps []models.UserGroupMapping
	for i, u := range members {
		if i < 11 {
			maps = append(maps, models.UserGroupMapping{UserGroupID: groups[0].ID, UserID: u.ID})
		}
		if i >= 8 {
			maps = append(maps, models.UserGroupMapping{UserGroupID: groups[1].ID, UserID: u.ID})
		}
	}
	if _, err := tx.NewInsert().Model(&maps).Exec(ctx); err != nil {
		return fmt.Errorf("insert group members: %w", err)
	}

	g.users, g.demo, g.members, g.groups = users, demo, members, groups
	g.res.Users, g.res.Groups = len(users), len(groups)
	return nil
}

func (g *demoGym) grants(ctx context.Context) error {
	tx, now, pkgs, groups := g.tx, g.now, g.pkgs, g.groups
	g.bulks = []*models.BulkPass{
		// add-passes grants this one two minutes after the seed.
		{PackageID: pkgs[2].ID, UserGroupID: groups[0].ID, Status: models.BulkPassReady, Count: ptr(20),
			StartedAt: now.Add(2 * time.Minute), EndedAt: ptr(now.Add(2*time.Minute + 90*day))},
		// granted a month ago.
		{PackageID: pkgs[0].ID, UserGroupID: groups[1].ID, Status: models.BulkPassCompleted, Count: ptr(10),
			StartedAt: now.Add(-30 * day), EndedAt: ptr(now.Add(30 * day))},
	}
	if _, err := tx.NewInsert().Model(&g.bulks).Returning("id").Exec(ctx); err != nil {
		return fmt.Errorf("insert bulk passes: %w", err)
	}

	g.res.BulkPasses = len(g.bulks)
	return nil
}

func (g *demoGym) passes(ctx context.Context) error {
	tx, now, pkgs, demo, members, bulks := g.tx, g.now, g.pkgs, g.demo, g.members, g.bulks
	var passes []*models.Pass
	add := func(p *models.Pass) *models.Pass { passes = append(passes, p); return p }
	// The demo user: one of each kind.
	dMain := add(&models.Pass{PackageID: pkgs[1].ID, UserID: demo.ID, Status: models.PassProgressed, RemainingCount: ptr(24),
		StartedAt: now.Add(-40 * day), EndedAt: ptr(now.Add(140 * day))})
	dSoon := add(&models.Pass{PackageID: pkgs[0].ID, UserID: demo.ID, Status: models.PassProgressed, RemainingCount: ptr(3),
		StartedAt: now.Add(-58 * day), EndedAt: ptr(now.Add(2 * day))}) // notify-before-expiry
	add(&models.Pass{PackageID: pkgs[3].ID, UserID: demo.ID, Status: models.PassProgressed, RemainingCount: nil,
		StartedAt: now.Add(-10 * day), EndedAt: nil}) // unlimited
	add(&models.Pass{PackageID: pkgs[2].ID, UserID: demo.ID, Status: models.PassReady, RemainingCount: ptr(20),
		StartedAt: now.Add(time.Minute), EndedAt: ptr(now.Add(time.Minute + 90*day))}) // expire-passes starts it
	add(&models.Pass{PackageID: pkgs[0].ID, UserID: demo.ID, Status: models.PassExpired, RemainingCount: ptr(0),
		StartedAt: now.Add(-200 * day), EndedAt: ptr(now.Add(-140 * day)), ExpiredAt: ptr(now.Add(-140 * day))})
	add(&models.Pass{PackageID: pkgs[0].ID, UserID: demo.ID, Status: models.PassProgressed, RemainingCount: ptr(2),
		StartedAt: now.Add(-60 * day), EndedAt: ptr(now.Add(-time.Minute))}) // expire-passes expires it (ended)
	// Other members.
	for i, u := range members[1:] {
		switch i % 5 {
		case 0:
			add(&models.Pass{PackageID: pkgs[0].ID, UserID: u.ID, Status: models.PassProgressed, RemainingCount: ptr(6 + i%4),
				StartedAt: now.Add(-20 * day), EndedAt: ptr(now.Add(40 * day))})
		case 1:
			add(&models.Pass{PackageID: pkgs[1].ID, UserID: u.ID, Status: models.PassProgressed, RemainingCount: ptr(1),
				StartedAt: now.Add(-170 * day), EndedAt: ptr(now.Add(10 * day))}) // last use: notify-before-expiry
		case 2:
			add(&models.Pass{PackageID: pkgs[0].ID, UserID: u.ID, Status: models.PassProgressed, RemainingCount: ptr(0),
				StartedAt: now.Add(-50 * day), EndedAt: ptr(now.Add(10 * day))}) // used up: expire-passes
		case 3:
			add(&models.Pass{PackageID: pkgs[2].ID, UserID: u.ID, Status: models.PassProgressed, RemainingCount: ptr(12),
				StartedAt: now.Add(-30 * day), EndedAt: ptr(now.Add(60 * day))})
		case 4:
			add(&models.Pass{PackageID: pkgs[0].ID, UserID: u.ID, Status: models.PassExpired, RemainingCount: ptr(4),
				StartedAt: now.Add(-90 * day), EndedAt: ptr(now.Add(-30 * day)), ExpiredAt: ptr(now.Add(-30 * day))})
		}
	}
	// Passes of the completed bulk grant.
	for i, u := range members {
		if i >= 8 {
			add(&models.Pass{PackageID: pkgs[0].ID, UserID: u.ID, BulkPassID: &bulks[1].ID, Status: models.PassProgressed,
				RemainingCount: ptr(8), StartedAt: bulks[1].StartedAt, EndedAt: bulks[1].EndedAt})
		}
	}
	if _, err := tx.NewInsert().Model(&passes).Returning("id").Exec(ctx); err != nil {
		return fmt.Errorf("insert passes: %w", err)
	}

	g.all, g.dMain, g.dSoon = passes, dMain, dSoon
	g.res.Passes = len(passes)
	return nil
}

func (g *demoGym) bookings(ctx context.Context) error {
	tx, now, passes, dMain, dSoon := g.tx, g.now, g.all, g.dMain, g.dSoon
	var bookings []*models.Booking
	book := func(p *models.Pass, status string, start time.Time, attended, used bool) {
		b := &models.Booking{PassID: p.ID, UserID: p.UserID, Status: status, StartedAt: start, EndedAt: start.Add(50 * time.Minute),
			Attended: attended, UsedPass: used}
		if status == models.BookingCancelled {
			b.CancelledAt = ptr(start.Add(-3 * time.Hour))
		}
		bookings = append(bookings, b)
	}
	hour := now.Truncate(time.Hour)
	// (The month of classes behind the gym is PastClasses', booked
	// through the service once these rows are in.)
	active := []*models.Pass{}
	for _, p := range passes {
		if p.Status == models.PassProgressed && (p.RemainingCount == nil || *p.RemainingCount >= 3) {
			active = append(active, p)
		}
	}
	// The previous hour: make-statistics' default window.
	book(dMain, models.BookingCompleted, hour.Add(-2*time.Hour+10*time.Minute), true, true)
	book(active[1], models.BookingCancelled, hour.Add(-2*time.Hour+10*time.Minute), false, false)
	// Ended, attended, not yet deducted: use-passes deducts them (two on one pass).
	book(dMain, models.BookingCompleted, now.Add(-3*time.Hour), true, false)
	book(dMain, models.BookingCompleted, now.Add(-26*time.Hour), true, false)
	book(dSoon, models.BookingCompleted, now.Add(-2*time.Hour), true, false)
	for i, p := range active[3:8] {
		book(p, models.BookingCompleted, now.Add(-time.Duration(i+2)*time.Hour), true, false)
	}
	// A used-up pass with a pending booking: use-passes skips it with a reason.
	for _, p := range passes {
		if p.Status == models.PassProgressed && p.RemainingCount != nil && *p.RemainingCount == 0 {
			book(p, models.BookingCompleted, now.Add(-4*time.Hour), true, false)
			break
		}
	}
	// Classes about to start: notify-before-class (10-minute window).
	book(dMain, models.BookingReady, now.Add(4*time.Minute), false, false)
	for i, p := range active[2:7] {
		book(p, models.BookingReady, now.Add(time.Duration(2+i*3)*time.Minute), false, false)
	}
	// Upcoming classes for the demo user.
	book(dMain, models.BookingReady, hour.Add(2*day+10*time.Hour), false, false)
	book(dMain, models.BookingReady, hour.Add(5*day+19*time.Hour), false, false)
	if _, err := tx.NewInsert().Model(&bookings).Exec(ctx); err != nil {
		return fmt.Errorf("insert bookings: %w", err)
	}
	g.res.Bookings = len(bookings)
	return nil
}

const day = 24 * time.Hour

// HistoryDays is how many days of past classes the demo gym has.
const HistoryDays = 30
