package gym

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/models"
)

// Class is a class on the timetable as members and admins see it.
type Class struct {
	ID          int64      `json:"id" bun:"id,pk,autoincrement"`
	Title       string     `json:"title" bun:"title"`
	Trainer     string     `json:"trainer" bun:"trainer"`
	Place       string     `json:"place" bun:"place"`
	StartedAt   time.Time  `json:"started_at" bun:"started_at"`
	EndedAt     time.Time  `json:"ended_at" bun:"ended_at"`
	Capacity    int        `json:"capacity" bun:"capacity"`
	Booked      int        `json:"booked" bun:"booked"`
	SeatsLeft   int        `json:"seats_left" bun:"-"`
	Status      string     `json:"status" bun:"status"`
	Series      *uuid.UUID `json:"series,omitempty" bun:"series"`
	CancelledAt *time.Time `json:"cancelled_at,omitempty" bun:"cancelled_at"`
}

// Class statuses.
const (
	ClassOpen      = "OPEN"
	ClassCancelled = "CANCELLED"
)

// ClassInput is a class an admin creates or edits. RepeatWeeks (creation
// only, default 1) makes the class on as many consecutive weeks, at the
// same time of day in the gym's zone.
type ClassInput struct {
	Title       string    `json:"title"`
	Trainer     string    `json:"trainer"`
	Place       string    `json:"place"`
	StartedAt   time.Time `json:"started_at"`
	EndedAt     time.Time `json:"ended_at"`
	Capacity    int       `json:"capacity"`
	RepeatWeeks int       `json:"repeat_weeks"`
}

// maxRepeatWeeks bounds a weekly series made at once (a year).
const maxRepeatWeeks = 52

func (in *ClassInput) validate() error {
	in.Title, in.Trainer, in.Place = strings.TrimSpace(in.Title), strings.TrimSpace(in.Trainer), strings.TrimSpace(in.Place)
	switch {
	case in.Title == "" || len([]rune(in.Title)) > 200:
		return &FieldError{Field: "title", Message: "1 to 200 characters"}
	case len([]rune(in.Trainer)) > 100:
		return &FieldError{Field: "trainer", Message: "at most 100 characters"}
	case len([]rune(in.Place)) > 100:
		return &FieldError{Field: "place", Message: "at most 100 characters"}
	case in.StartedAt.IsZero():
		return &FieldError{Field: "started_at", Message: "required (RFC 3339)"}
	case !in.EndedAt.After(in.StartedAt) || in.EndedAt.Sub(in.StartedAt) > 12*time.Hour:
		return &FieldError{Field: "ended_at", Message: "after started_at, at most 12 hours later"}
	case in.Capacity < 1 || in.Capacity > 1000:
		return &FieldError{Field: "capacity", Message: "1 to 1000"}
	case in.RepeatWeeks < 0 || in.RepeatWeeks > maxRepeatWeeks:
		return &FieldError{Field: "repeat_weeks", Message: fmt.Sprintf("1 to %d", maxRepeatWeeks)}
	}
	in.StartedAt, in.EndedAt = in.StartedAt.UTC(), in.EndedAt.UTC()
	return nil
}

// refused is a request the current state forbids, with why.
func refused(why string) error { return fmt.Errorf("%w: %s", ErrConflict, why) }

// Classes lists the classes starting in [from, to), by start: at most 62
// days; zero times mean from now for 7 days.
func (s *Service) Classes(ctx context.Context, from, to time.Time) ([]Class, error) {
	if from.IsZero() {
		from = s.now()
	}
	if to.IsZero() {
		to = from.AddDate(0, 0, 7)
	}
	if !to.After(from) || to.Sub(from) > 62*24*time.Hour {
		return nil, &FieldError{Field: "to", Message: "after from, at most 62 days later"}
	}
	out := []Class{}
	if err := s.DB.NewSelect().Model(&out).ModelTableExpr("class").Where("started_at >= ? AND started_at < ?", from, to).
		Order("started_at", "id").Limit(2000).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list classes: %w", err)
	}
	for i := range out {
		out[i].seats()
	}
	return out, nil
}

func (c *Class) seats() {
	if c.Status == ClassOpen {
		c.SeatsLeft = c.Capacity - c.Booked
	}
}

// loadClass reads class id (for update in a transaction when lock).
func loadClass(ctx context.Context, db bun.IDB, id int64, lock bool) (*Class, error) {
	c := &Class{}
	q := db.NewSelect().Model(c).ModelTableExpr("class").Where("id = ?", id)
	if lock {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound("class")
		}
		return nil, fmt.Errorf("load class %d: %w", id, err)
	}
	c.seats()
	return c, nil
}

// ClassBooking is a booking of a class as the admin's class page shows it.
type ClassBooking struct {
	ID       int64  `json:"id" bun:"id"`
	UserID   int64  `json:"user_id" bun:"user_id"`
	UserName string `json:"user_name" bun:"user_name"`
	PassID   int64  `json:"pass_id" bun:"pass_id"`
	Status   string `json:"status" bun:"status"`
	Attended bool   `json:"attended" bun:"attended"`
}

// ClassDetail is a class with its bookings.
type ClassDetail struct {
	Class
	Bookings []ClassBooking `json:"bookings"`
}

// ClassWithBookings reads class id and its bookings, live ones first.
func (s *Service) ClassWithBookings(ctx context.Context, id int64) (*ClassDetail, error) {
	c, err := loadClass(ctx, s.DB, id, false)
	if err != nil {
		return nil, err
	}
	d := &ClassDetail{Class: *c, Bookings: []ClassBooking{}}
	if err := s.DB.NewRaw(`SELECT b.id, b.user_id, u.name AS user_name, b.pass_id, b.status, b.attended
		FROM booking b JOIN users u ON u.id = b.user_id WHERE b.class_id = ?
		ORDER BY b.status = 'CANCELLED', u.name, b.id`, id).Scan(ctx, &d.Bookings); err != nil {
		return nil, fmt.Errorf("bookings of class %d: %w", id, err)
	}
	return d, nil
}

// CreateClasses makes in's class, or its weekly series, in one
// transaction.
func (s *Service) CreateClasses(ctx context.Context, in ClassInput) ([]Class, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	if !in.StartedAt.After(s.now()) {
		return nil, &FieldError{Field: "started_at", Message: "in the future"}
	}
	weeks := max(in.RepeatWeeks, 1)
	var series *uuid.UUID
	if weeks > 1 {
		u := uuid.New()
		series = &u
	}
	out := make([]Class, weeks)
	for i := range out {
		// Seoul keeps no daylight saving time: a week is 7 x 24 hours.
		shift := time.Duration(i) * 7 * 24 * time.Hour
		out[i] = Class{Title: in.Title, Trainer: in.Trainer, Place: in.Place, StartedAt: in.StartedAt.Add(shift),
			EndedAt: in.EndedAt.Add(shift), Capacity: in.Capacity, Status: ClassOpen, Series: series}
	}
	if _, err := s.DB.NewInsert().Model(&out).ModelTableExpr("class").Returning("id").Exec(ctx); err != nil {
		return nil, fmt.Errorf("create classes: %w", err)
	}
	for i := range out {
		out[i].seats()
	}
	return out, nil
}

// UpdateClass edits an open class that has not started; its live
// bookings move with its times. Capacity cannot drop below the seats
// booked.
func (s *Service) UpdateClass(ctx context.Context, id int64, in ClassInput) (*Class, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	if in.RepeatWeeks > 1 {
		return nil, &FieldError{Field: "repeat_weeks", Message: "only when creating"}
	}
	var out *Class
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		c, err := loadClass(ctx, tx, id, true)
		if err != nil {
			return err
		}
		switch {
		case c.Status != ClassOpen:
			return refused("the class was cancelled")
		case !c.StartedAt.After(s.now()):
			return refused("the class has started")
		case in.Capacity < c.Booked:
			return &FieldError{Field: "capacity", Message: fmt.Sprintf("%d seats are booked", c.Booked)}
		case !in.StartedAt.After(s.now()):
			return &FieldError{Field: "started_at", Message: "in the future"}
		}
		c.Title, c.Trainer, c.Place, c.StartedAt, c.EndedAt, c.Capacity = in.Title, in.Trainer, in.Place, in.StartedAt, in.EndedAt, in.Capacity
		if _, err := tx.NewUpdate().Model(c).ModelTableExpr("class").Column("title", "trainer", "place", "started_at", "ended_at", "capacity").
			Set("modified_at = now()").WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("update class %d: %w", id, err)
		}
		if _, err := tx.NewRaw(`UPDATE booking SET started_at = ?, ended_at = ?, modified_at = now() WHERE class_id = ? AND status = 'READY'`,
			c.StartedAt, c.EndedAt, id).Exec(ctx); err != nil {
			return fmt.Errorf("move the bookings of class %d: %w", id, err)
		}
		c.seats()
		out = c
		return nil
	})
	return out, err
}

// CancelClass cancels an open class that has not ended: its live
// bookings are cancelled (their uses are free again) and each booked
// member gets one CLASS_CANCELLED notice, sent by the notify-before-class
// job's sender. It returns the class and how many bookings it cancelled.
func (s *Service) CancelClass(ctx context.Context, id int64) (*Class, int, error) {
	var out *Class
	var n int
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		c, err := loadClass(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if c.Status != ClassOpen {
			return refused("the class was cancelled already")
		}
		if !c.EndedAt.After(s.now()) {
			return refused("the class has ended")
		}
		var users []int64
		if err := tx.NewRaw(`WITH cancelled AS (
				UPDATE booking SET status = 'CANCELLED', cancelled_at = ?, modified_at = now()
				WHERE class_id = ? AND status = 'READY' RETURNING id, user_id)
			INSERT INTO notification (user_id, event, dedup_key, text)
			SELECT user_id, 'CLASS_CANCELLED', 'class-cancelled:booking:' || id, ? FROM cancelled
			ON CONFLICT (dedup_key) DO NOTHING RETURNING user_id`,
			s.now(), id, cancelledText(c)).Scan(ctx, &users); err != nil {
			return fmt.Errorf("cancel the bookings of class %d: %w", id, err)
		}
		if _, err := tx.NewRaw(`UPDATE class SET status = 'CANCELLED', cancelled_at = ?, booked = 0, modified_at = now() WHERE id = ?`,
			s.now(), id).Exec(ctx); err != nil {
			return fmt.Errorf("cancel class %d: %w", id, err)
		}
		c.Status, c.Booked, c.SeatsLeft = ClassCancelled, 0, 0
		out, n = c, len(users)
		return nil
	})
	return out, n, err
}

func cancelledText(c *Class) string {
	return fmt.Sprintf("[수업 취소] %s 수업(%s)이 취소되었습니다. 이용권 횟수는 차감되지 않습니다.",
		c.StartedAt.In(models.Seoul).Format("1월 2일 15:04"), c.Title)
}

// MarkAttendance sets who came to class id: the live bookings of the
// members in attended are marked attended, the others not. It may be
// done once the class has started, and again to correct it.
func (s *Service) MarkAttendance(ctx context.Context, id int64, attended []int64) (int, error) {
	c, err := loadClass(ctx, s.DB, id, false)
	if err != nil {
		return 0, err
	}
	if c.Status != ClassOpen {
		return 0, refused("the class was cancelled")
	}
	if c.StartedAt.After(s.now()) {
		return 0, refused("the class has not started")
	}
	var marked int
	if err := s.DB.NewRaw(`WITH m AS (UPDATE booking SET attended = coalesce(user_id = ANY(?::bigint[]), false), modified_at = now()
			WHERE class_id = ? AND status <> 'CANCELLED' RETURNING attended)
		SELECT count(*) FILTER (WHERE attended) FROM m`, pgdialect.Array(attended), id).Scan(ctx, &marked); err != nil {
		return 0, fmt.Errorf("mark attendance of class %d: %w", id, err)
	}
	return marked, nil
}

// BookRequest is a member's booking of a class with one of their passes.
type BookRequest struct {
	ClassID int64 `json:"class_id"`
	PassID  int64 `json:"pass_id"`
}

// Book books class r.ClassID for member userID with pass r.PassID, in one
// transaction that the database keeps right under concurrency: the
// member's row and the pass's row are locked (so their checks and the
// count of the pass's uses booked but not yet deducted see every booking
// committed before), and the seat is taken by a conditional UPDATE that
// the class's CHECK bounds. Every refusal is a FieldError or ErrConflict
// that changes nothing. With idem, a repeat returns the first answer.
func (s *Service) Book(ctx context.Context, userID int64, r BookRequest, idem *Idempotency) (*Booking, json.RawMessage, error) {
	if r.ClassID <= 0 {
		return nil, nil, &FieldError{Field: "class_id", Message: "required"}
	}
	if r.PassID <= 0 {
		return nil, nil, &FieldError{Field: "pass_id", Message: "required"}
	}
	b, replay, err := idempotent(ctx, s.DB, idem, func(ctx context.Context, tx bun.Tx) (*Booking, error) {
		return s.book(ctx, tx, userID, r)
	})
	if err != nil || replay != nil {
		return nil, replay, err
	}
	return b, nil, nil
}

// book is Book's transaction.
func (s *Service) book(ctx context.Context, tx bun.Tx, userID int64, r BookRequest) (*Booking, error) {
	var status string
	if err := tx.NewRaw(`SELECT status FROM users WHERE id = ? FOR SHARE`, userID).Scan(ctx, &status); err != nil {
		return nil, fmt.Errorf("load member %d: %w", userID, err)
	}
	if status != models.UserActive {
		return nil, refused("the member is not active")
	}
	c, err := loadClass(ctx, tx, r.ClassID, false)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Status != ClassOpen:
		return nil, refused("the class was cancelled")
	case !c.StartedAt.After(s.now()):
		return nil, refused("the class has started")
	}
	if err := lockPassFor(ctx, tx, userID, r.PassID, c, s.now()); err != nil {
		return nil, err
	}
	res, err := tx.NewRaw(`UPDATE class SET booked = booked + 1, modified_at = now()
		WHERE id = ? AND status = 'OPEN' AND started_at > ? AND booked < capacity`, c.ID, s.now()).Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("take a seat in class %d: %w", c.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, refused("the class is full")
	}
	var id int64
	err = tx.NewRaw(`INSERT INTO booking (class_id, pass_id, user_id, status, started_at, ended_at)
		VALUES (?, ?, ?, 'READY', ?, ?) RETURNING id`, c.ID, r.PassID, userID, c.StartedAt, c.EndedAt).Scan(ctx, &id)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return nil, refused("you have booked this class already")
	}
	if err != nil {
		return nil, fmt.Errorf("record the booking: %w", err)
	}
	return bookingByID(ctx, tx, id)
}

// lockPassFor locks pass passID and checks that member userID may book
// class c with it: theirs, PROGRESSED, covering the class's start, and
// with a use left once the uses booked and not yet deducted are counted.
func lockPassFor(ctx context.Context, tx bun.Tx, userID, passID int64, c *Class, now time.Time) error {
	var p models.Pass
	err := tx.NewSelect().Model(&p).Where("id = ?", passID).For("UPDATE").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && p.UserID != userID) {
		return &FieldError{Field: "pass_id", Message: "not a pass of yours"}
	}
	if err != nil {
		return fmt.Errorf("load pass %d: %w", passID, err)
	}
	switch {
	case p.Status != models.PassProgressed:
		return refused(fmt.Sprintf("the pass is %s, not in use", p.Status))
	case p.StartedAt.After(c.StartedAt) || (p.EndedAt != nil && p.EndedAt.Before(c.StartedAt)):
		return refused("the pass does not cover the class's start")
	case p.RemainingCount == nil:
		return nil // unlimited
	}
	// After the lock: this statement sees every booking committed by the
	// transactions that held it before.
	var pending int
	if err := tx.NewRaw(`SELECT (SELECT count(*) FROM booking WHERE pass_id = ? AND status = 'READY')
		+ (SELECT count(*) FROM booking WHERE pass_id = ? AND status = 'COMPLETED' AND NOT used_pass)`, passID, passID).Scan(ctx, &pending); err != nil {
		return fmt.Errorf("count the pass's booked uses: %w", err)
	}
	if *p.RemainingCount-pending <= 0 {
		return refused(fmt.Sprintf("the pass has no use left (%d left, %d booked)", *p.RemainingCount, pending))
	}
	return nil
}

// CancelBooking cancels member userID's booking id until cutoff before
// its class starts; the seat and the pass's use are free again.
func (s *Service) CancelBooking(ctx context.Context, userID, id int64, cutoff time.Duration) (*Booking, error) {
	var b *Booking
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var cur struct {
			UserID    int64     `bun:"user_id"`
			Status    string    `bun:"status"`
			StartedAt time.Time `bun:"started_at"`
			ClassID   *int64    `bun:"class_id"`
		}
		err := tx.NewRaw(`SELECT user_id, status, started_at, class_id FROM booking WHERE id = ? FOR UPDATE`, id).Scan(ctx, &cur)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && cur.UserID != userID) {
			return notFound("booking")
		}
		switch {
		case err != nil:
			return fmt.Errorf("load booking %d: %w", id, err)
		case cur.Status != "READY":
			return refused("the booking is " + cur.Status)
		case cur.StartedAt.Add(-cutoff).Before(s.now()):
			return refused(fmt.Sprintf("bookings can be cancelled until %s before the class", cutoff))
		}
		if _, err := tx.NewRaw(`UPDATE booking SET status = 'CANCELLED', cancelled_at = ?, modified_at = now() WHERE id = ?`,
			s.now(), id).Exec(ctx); err != nil {
			return fmt.Errorf("cancel booking %d: %w", id, err)
		}
		if cur.ClassID != nil {
			if _, err := tx.NewRaw(`UPDATE class SET booked = booked - 1, modified_at = now() WHERE id = ?`, *cur.ClassID).Exec(ctx); err != nil {
				return fmt.Errorf("free the seat: %w", err)
			}
		}
		b, err = bookingByID(ctx, tx, id)
		return err
	})
	return b, err
}

// bookingByID reads booking id as its member sees it.
func bookingByID(ctx context.Context, db bun.IDB, id int64) (*Booking, error) {
	b := &Booking{}
	if err := db.NewRaw(`SELECT `+bookingColumns+` WHERE b.id = ?`, id).Scan(ctx, b); err != nil {
		return nil, fmt.Errorf("load booking %d: %w", id, err)
	}
	return b, nil
}
