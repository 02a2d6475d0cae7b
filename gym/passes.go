package gym

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/models"
)

// Pass is a pass as its owner and admins see it.
type Pass struct {
	ID             int64      `json:"id" bun:"id"`
	PackageID      int64      `json:"package_id" bun:"package_id"`
	PackageName    string     `json:"package_name" bun:"package_name"`
	Status         string     `json:"status" bun:"status"`
	RemainingCount *int       `json:"remaining_count" bun:"remaining_count"`
	StartedAt      time.Time  `json:"started_at" bun:"started_at"`
	EndedAt        *time.Time `json:"ended_at" bun:"ended_at"`
	ExpiredAt      *time.Time `json:"expired_at" bun:"expired_at"`
	// DaysLeft counts the days (in the gym's zone) until EndedAt; nil for
	// a pass with no end or one that has ended.
	DaysLeft *int `json:"days_left" bun:"-"`
	// Notices are the expiry warnings sent about the pass.
	Notices []Notice `json:"notices" bun:"-"`
}

// Passes lists user userID's passes by id, after p.After, with the
// expiry warnings about each; an unknown user is ErrNotFound.
func (s *Service) Passes(ctx context.Context, userID int64, p Page) ([]Pass, error) {
	_, out, err := s.passes(ctx, userID, nil, p)
	return out, err
}

// ErrNoSession is a session whose user is gone, not active, or logged out
// since (another session epoch).
var ErrNoSession = errors.New("no such session")

// SessionUser is who a session belongs to.
type SessionUser struct {
	Name  string
	Admin bool
}

// SessionPasses is Passes for the member of a session made at epoch: the
// same statement checks that the member is active and still at that
// epoch (ErrNoSession if not), so the members' busiest page costs one
// round trip.
func (s *Service) SessionPasses(ctx context.Context, userID int64, epoch int, p Page) (SessionUser, []Pass, error) {
	return s.passes(ctx, userID, &epoch, p)
}

// passRow is a row of the passes statement: the user, one of their passes
// (or none) and one warning about it (or none).
type passRow struct {
	UserName string `bun:"user_name"`
	UserRole string `bun:"user_role"`
	PassID   *int64 `bun:"pass_id"`
	Pass     Pass   `bun:"embed:"`
	Notice   Notice `bun:"embed:n_"`
}

// passesOfUser reads user $1, the page of their passes after $2 (at most
// $3) and the warnings about them; passesOfSession only if the user is
// active ($4) at session epoch $5. Fixed texts: they are prepared once a
// connection.
const (
	passesOfUser = `SELECT u.name AS user_name, u.role AS user_role, p.id AS pass_id,
		p.id, p.package_id, k.name AS package_name, p.status, p.remaining_count, p.started_at, p.ended_at, p.expired_at,
		n.id AS n_id, n.event AS n_event, n.text AS n_text, n.sent AS n_sent, n.sent_at AS n_sent_at, n.error AS n_error,
		n.created_at AS n_created_at,
		CASE WHEN n.sent THEN 'sent' WHEN n.error IS NOT NULL THEN 'failed' ELSE 'pending' END AS n_delivery, p.id AS n_pass_id
		FROM users u
		LEFT JOIN LATERAL (SELECT * FROM pass WHERE user_id = u.id AND id > $2 ORDER BY id LIMIT $3) p ON true
		LEFT JOIN package k ON k.id = p.package_id
		LEFT JOIN notification n ON n.user_id = u.id AND n.dedup_key LIKE 'before-expiry:pass:%' AND split_part(n.dedup_key, ':', 3) = p.id::text
		WHERE u.id = $1`
	passesOrder     = ` ORDER BY p.id, n.id DESC`
	passesOfSession = passesOfUser + ` AND u.status = $4 AND u.session_epoch = $5` + passesOrder
)

// passes reads the user, a page of their passes and the warnings about
// them in one statement; with epoch set, only an active user at that
// session epoch counts.
func (s *Service) passes(ctx context.Context, userID int64, epoch *int, p Page) (SessionUser, []Pass, error) {
	q, args := passesOfUser+passesOrder, []any{userID, p.After, p.limit()}
	if epoch != nil {
		q, args = passesOfSession, append(args, models.UserActive, *epoch)
	}
	var rows []passRow
	if err := database.QueryPrepared(ctx, s.DB, &rows, q, args...); err != nil {
		return SessionUser{}, nil, fmt.Errorf("list passes of user %d: %w", userID, err)
	}
	if len(rows) == 0 {
		if epoch != nil {
			return SessionUser{}, nil, ErrNoSession
		}
		return SessionUser{}, nil, notFound("user")
	}
	who := SessionUser{Name: rows[0].UserName, Admin: rows[0].UserRole == models.RoleAdmin}
	out := []Pass{}
	today := dayOf(s.now())
	for _, r := range rows {
		if r.PassID == nil {
			continue // a user without passes (on this page)
		}
		if len(out) == 0 || out[len(out)-1].ID != *r.PassID {
			out = append(out, r.Pass)
			last := &out[len(out)-1]
			last.Notices = []Notice{}
			if last.EndedAt != nil && last.Status != models.PassExpired {
				if d := int(dayOf(*last.EndedAt).Sub(today).Hours() / 24); d >= 0 {
					last.DaysLeft = &d
				}
			}
		}
		if r.Notice.ID != 0 {
			last := &out[len(out)-1]
			last.Notices = append(last.Notices, r.Notice)
		}
	}
	return who, out, nil
}

// dayOf is t's date in the gym's zone, as midnight UTC (for counting days).
func dayOf(t time.Time) time.Time {
	y, m, d := t.In(models.Seoul).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
