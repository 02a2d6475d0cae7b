package gym

import (
	"context"
	"fmt"
	"time"
)

// Booking is a member's class booking with the pass it was booked on.
type Booking struct {
	ID          int64      `bun:"id" json:"id"`
	PassID      int64      `bun:"pass_id" json:"pass_id"`
	PackageName string     `bun:"package_name" json:"package_name"`
	Status      string     `bun:"status" json:"status"`
	Attended    bool       `bun:"attended" json:"attended"`
	UsedPass    bool       `bun:"used_pass" json:"used_pass"`
	StartedAt   time.Time  `bun:"started_at" json:"started_at"`
	EndedAt     time.Time  `bun:"ended_at" json:"ended_at"`
	CancelledAt *time.Time `bun:"cancelled_at" json:"cancelled_at"`
	// ClassID and the class's title, trainer and place: for a booking made
	// on the timetable (none for one recorded otherwise).
	ClassID    *int64 `bun:"class_id" json:"class_id"`
	ClassTitle string `bun:"class_title" json:"class_title,omitempty"`
	Trainer    string `bun:"trainer" json:"trainer,omitempty"`
	Place      string `bun:"place" json:"place,omitempty"`
}

// Bookings lists user userID's bookings newest first (by id), before the id
// p.After when set: a page stays the same while new bookings arrive.
func (s *Service) Bookings(ctx context.Context, userID int64, p Page) ([]Booking, error) {
	out := []Booking{}
	q := `SELECT ` + bookingColumns + ` WHERE b.user_id = ? AND (? = 0 OR b.id < ?) ORDER BY b.id DESC LIMIT ?`
	if err := s.DB.NewRaw(q, userID, p.After, p.After, p.limit()).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("list bookings of user %d: %w", userID, err)
	}
	return out, nil
}

// bookingColumns selects a Booking.
const bookingColumns = `b.id, b.pass_id, k.name AS package_name, b.status, b.attended, b.used_pass, b.started_at, b.ended_at, b.cancelled_at,
	b.class_id, coalesce(c.title, '') AS class_title, coalesce(c.trainer, '') AS trainer, coalesce(c.place, '') AS place
	FROM booking b JOIN pass s ON s.id = b.pass_id JOIN package k ON k.id = s.package_id LEFT JOIN class c ON c.id = b.class_id`

// UpcomingClasses lists user userID's booked classes that start after
// now, soonest first (at most 100).
func (s *Service) UpcomingClasses(ctx context.Context, userID int64, now time.Time) ([]Booking, error) {
	out := []Booking{}
	if err := s.DB.NewRaw(`SELECT `+bookingColumns+` WHERE b.user_id = ? AND b.status = 'READY' AND b.started_at > ?
		ORDER BY b.started_at, b.id LIMIT 100`, userID, now).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("upcoming classes of user %d: %w", userID, err)
	}
	return out, nil
}

// ClassCursor is where a page of past classes ends: its last class's
// start and id (the zero cursor starts at the latest).
type ClassCursor struct {
	At time.Time
	ID int64
}

// PastClasses lists user userID's other classes (started by now, or
// cancelled, or done), latest first, after cursor c.
func (s *Service) PastClasses(ctx context.Context, userID int64, now time.Time, c ClassCursor, limit int) ([]Booking, error) {
	out := []Booking{}
	q := `SELECT ` + bookingColumns + ` WHERE b.user_id = ? AND NOT (b.status = 'READY' AND b.started_at > ?)`
	args := []any{userID, now}
	if c.ID > 0 {
		q += ` AND (b.started_at, b.id) < (?, ?)`
		args = append(args, c.At, c.ID)
	}
	q += ` ORDER BY b.started_at DESC, b.id DESC LIMIT ?`
	if err := s.DB.NewRaw(q, append(args, limit)...).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("past classes of user %d: %w", userID, err)
	}
	return out, nil
}

// Notice is a notification sent (or to be sent) to a member.
type Notice struct {
	ID     int64      `bun:"id" json:"id"`
	Event  string     `bun:"event" json:"event"`
	Text   string     `bun:"text" json:"text"`
	Sent   bool       `bun:"sent" json:"sent"`
	SentAt *time.Time `bun:"sent_at" json:"sent_at"`
	// Delivery is what members and the API see: sent, pending or failed.
	Delivery string `bun:"delivery" json:"delivery"`
	// Error is the provider's raw answer to a failed delivery: for the
	// logs and the database, never shown (it may name the provider's
	// internals or credentials).
	Error     *string   `bun:"error" json:"-"`
	CreatedAt time.Time `bun:"created_at" json:"created_at"`
	// PassID is the pass an expiry warning is about.
	PassID *int64 `bun:"pass_id" json:"pass_id,omitempty"`
}

// noticeColumns selects a Notice; an expiry warning's pass comes from its
// dedup key (before-expiry:pass:<id>:<reason>).
const noticeColumns = `n.id, n.event, n.text, n.sent, n.sent_at, n.error, n.created_at,
	CASE WHEN n.sent THEN 'sent' WHEN n.error IS NOT NULL THEN 'failed' ELSE 'pending' END AS delivery,
	CASE WHEN n.dedup_key LIKE 'before-expiry:pass:%' THEN split_part(n.dedup_key, ':', 3)::bigint END AS pass_id`

// Notices lists user userID's notifications newest first, before the id
// p.After when set.
func (s *Service) Notices(ctx context.Context, userID int64, p Page) ([]Notice, error) {
	out := []Notice{}
	if err := s.DB.NewRaw(`SELECT `+noticeColumns+` FROM notification n
		WHERE n.user_id = ? AND (? = 0 OR n.id < ?) ORDER BY n.id DESC LIMIT ?`, userID, p.After, p.After, p.limit()).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("list notices of user %d: %w", userID, err)
	}
	return out, nil
}
