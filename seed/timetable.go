package seed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/gym"
	"github.com/passbatch/passbatch/models"
)

// demoClass is a weekly class of the demo gym's timetable, at a time of
// day in the gym's zone.
type demoClass struct {
	title, trainer, place string
	hour, minute          int
	length                time.Duration
	capacity              int
}

var demoWeek = []demoClass{
	{"새벽 PT", "김코치", "1층 웨이트존", 6, 30, 50 * time.Minute, 6},
	{"아침 필라테스", "박코치", "2층 A룸", 8, 0, 50 * time.Minute, 8},
	{"점심 요가", "이코치", "3층 요가룸", 12, 10, 40 * time.Minute, 12},
	{"저녁 PT 그룹", "김코치", "1층 웨이트존", 19, 30, 50 * time.Minute, 6},
	{"저녁 요가", "이코치", "3층 요가룸", 20, 40, 50 * time.Minute, 10},
}

// Timetable gives the demo gym two weeks of classes ahead, made and booked
// through the same service the pages use: the demo member and a few others
// book some of them with their passes, so /me/classes and /admin/classes
// show a real week. It returns the classes and bookings it made.
func Timetable(ctx context.Context, db *bun.DB, now time.Time) (classes, bookings int, err error) {
	svc := &gym.Service{DB: db, Now: func() time.Time { return now }}
	today := now.In(models.Seoul)
	var made []gym.Class
	for d := 1; d <= 7; d++ {
		day := time.Date(today.Year(), today.Month(), today.Day()+d, 0, 0, 0, 0, models.Seoul)
		for _, c := range demoWeek {
			start := day.Add(time.Duration(c.hour)*time.Hour + time.Duration(c.minute)*time.Minute)
			out, err := svc.CreateClasses(ctx, gym.ClassInput{Title: c.title, Trainer: c.trainer, Place: c.place,
				StartedAt: start, EndedAt: start.Add(c.length), Capacity: c.capacity, RepeatWeeks: 2})
			if err != nil {
				return 0, 0, fmt.Errorf("demo class %s: %w", c.title, err)
			}
			made = append(made, out...)
		}
	}
	var passes []struct {
		ID     int64 `bun:"id"`
		UserID int64 `bun:"user_id"`
	}
	// Members' passes in use with uses to spare, one a member, the demo
	// member's first.
	if err := db.NewRaw(`SELECT DISTINCT ON (p.user_id) p.id, p.user_id FROM pass p JOIN users u ON u.id = p.user_id
		WHERE p.status = 'PROGRESSED' AND (p.remaining_count IS NULL OR p.remaining_count >= 6) AND u.role = 'user'
		ORDER BY p.user_id, p.remaining_count DESC NULLS LAST, p.id`).Scan(ctx, &passes); err != nil {
		return 0, 0, fmt.Errorf("demo passes: %w", err)
	}
	for i, p := range passes {
		for k := 0; k < 3; k++ {
			c := made[(i*5+k*7)%len(made)]
			if _, _, err := svc.Book(ctx, p.UserID, gym.BookRequest{ClassID: c.ID, PassID: p.ID}, nil); err != nil {
				return 0, 0, fmt.Errorf("demo booking of class %d by member %d: %w", c.ID, p.UserID, err)
			}
			bookings++
		}
	}
	return len(made), bookings, nil
}

// PastClasses gives the demo gym its month of classes behind it, made the
// way the gym makes them: each class created on the timetable a day
// ahead, booked by members with their passes through the service, a few
// bookings cancelled before the cutoff, attendance marked after the
// start, and then completed and its uses recorded as the use-passes job
// records them (the demo's pass counts are today's, so the past uses are
// marked without counting down again). The clock moves with each step, so
// every rule of the booking path holds as it did then. It returns the
// classes and the bookings made.
func PastClasses(ctx context.Context, db *bun.DB, now time.Time) (classes, bookings int, err error) {
	var clock time.Time
	svc := &gym.Service{DB: db, Now: func() time.Time { return clock }}
	var passes []struct {
		ID     int64 `bun:"id"`
		UserID int64 `bun:"user_id"`
	}
	if err := db.NewRaw(`SELECT DISTINCT ON (p.user_id) p.id, p.user_id FROM pass p JOIN users u ON u.id = p.user_id
		WHERE p.status = 'PROGRESSED' AND p.started_at <= ? AND (p.remaining_count IS NULL OR p.remaining_count >= 3) AND u.role = 'user'
		ORDER BY p.user_id, p.started_at, p.id`, now.Add(-HistoryDays*day)).Scan(ctx, &passes); err != nil {
		return 0, 0, fmt.Errorf("demo passes: %w", err)
	}
	rnd := uint64(2027)
	next := func(n int) int { // a small LCG: the same now gives the same month
		rnd = rnd*6364136223846793005 + 1442695040888963407
		return int((rnd >> 33) % uint64(n))
	}
	today := now.In(models.Seoul)
	for d := HistoryDays; d >= 1; d-- {
		day := time.Date(today.Year(), today.Month(), today.Day()-d, 0, 0, 0, 0, models.Seoul)
		for _, dc := range demoWeek {
			start := day.Add(time.Duration(dc.hour)*time.Hour + time.Duration(dc.minute)*time.Minute)
			n, err := pastClass(ctx, svc, &clock, dc, start, passes, next)
			if err != nil {
				return 0, 0, err
			}
			classes, bookings = classes+1, bookings+n
		}
	}
	return classes, bookings, nil
}

// pastClass makes, books, attends and completes one class of the past.
func pastClass(ctx context.Context, svc *gym.Service, clock *time.Time, dc demoClass, start time.Time,
	passes []struct {
		ID     int64 `bun:"id"`
		UserID int64 `bun:"user_id"`
	}, next func(int) int) (int, error) {
	*clock = start.Add(-day)
	out, err := svc.CreateClasses(ctx, gym.ClassInput{Title: dc.title, Trainer: dc.trainer, Place: dc.place,
		StartedAt: start, EndedAt: start.Add(dc.length), Capacity: dc.capacity})
	if err != nil {
		return 0, fmt.Errorf("demo class %s: %w", dc.title, err)
	}
	c := out[0]
	var booked []gym.Booking
	var came []int64
	for k, first := 0, next(len(passes)); k < dc.capacity-next(3); k++ {
		p := passes[(first+k*7)%len(passes)]
		b, _, err := svc.Book(ctx, p.UserID, gym.BookRequest{ClassID: c.ID, PassID: p.ID}, nil)
		if errors.Is(err, gym.ErrConflict) {
			continue // booked already, or no use left: as a member would be told
		}
		if err != nil {
			return 0, fmt.Errorf("demo booking of class %d: %w", c.ID, err)
		}
		booked = append(booked, *b)
		switch r := next(12); {
		case r == 0:
			*clock = start.Add(-3 * time.Hour)
			if _, err := svc.CancelBooking(ctx, p.UserID, b.ID, time.Hour); err != nil {
				return 0, fmt.Errorf("demo cancellation: %w", err)
			}
		case r != 1: // one in twelve does not come
			came = append(came, p.UserID)
		}
		*clock = start.Add(-day)
	}
	*clock = start.Add(dc.length)
	if _, err := svc.MarkAttendance(ctx, c.ID, came); err != nil {
		return 0, fmt.Errorf("demo attendance: %w", err)
	}
	if _, err := svc.DB.NewRaw(`UPDATE booking SET status = 'COMPLETED', used_pass = true, modified_at = ? WHERE class_id = ? AND status = 'READY'`,
		start.Add(dc.length), c.ID).Exec(ctx); err != nil {
		return 0, fmt.Errorf("demo completion: %w", err)
	}
	return len(booked), nil
}
