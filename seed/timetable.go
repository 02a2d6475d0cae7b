package seed

import (
	"context"
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
	{"아침 필라테스", "박코치", "2층 A룸", 7, 0, 50 * time.Minute, 8},
	{"점심 요가", "이코치", "3층 요가룸", 12, 10, 40 * time.Minute, 12},
	{"저녁 PT 그룹", "김코치", "1층 웨이트존", 19, 30, 50 * time.Minute, 6},
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
