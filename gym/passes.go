package gym

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/uptrace/bun/dialect/pgdialect"

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

// Passes lists user userID's passes by id, after p.After; an unknown user
// is ErrNotFound.
func (s *Service) Passes(ctx context.Context, userID int64, p Page) ([]Pass, error) {
	exists, err := s.DB.NewSelect().Model((*models.User)(nil)).Where("id = ?", userID).Exists(ctx)
	if err != nil {
		return nil, fmt.Errorf("find user %d: %w", userID, err)
	}
	if !exists {
		return nil, notFound("user")
	}
	out := []Pass{}
	err = s.DB.NewRaw(`SELECT p.id, p.package_id, k.name AS package_name, p.status, p.remaining_count, p.started_at, p.ended_at, p.expired_at
		FROM pass p JOIN package k ON k.id = p.package_id
		WHERE p.user_id = ? AND p.id > ? ORDER BY p.id LIMIT ?`, userID, p.After, p.limit()).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("list passes: %w", err)
	}
	return out, s.passDetails(ctx, userID, out)
}

// passDetails fills each pass's days left and the notices about it.
func (s *Service) passDetails(ctx context.Context, userID int64, passes []Pass) error {
	if len(passes) == 0 {
		return nil
	}
	ids := make([]string, len(passes))
	for i, p := range passes {
		ids[i] = strconv.FormatInt(p.ID, 10)
	}
	var notices []Notice
	if err := s.DB.NewRaw(`SELECT `+noticeColumns+` FROM notification n
		WHERE n.user_id = ? AND n.dedup_key LIKE 'before-expiry:pass:%' AND split_part(n.dedup_key, ':', 3) = ANY(?)
		ORDER BY n.id DESC`, userID, pgdialect.Array(ids)).Scan(ctx, &notices); err != nil {
		return fmt.Errorf("notices about passes: %w", err)
	}
	about := map[int64][]Notice{}
	for _, n := range notices {
		about[*n.PassID] = append(about[*n.PassID], n)
	}
	today := dayOf(s.now())
	for i := range passes {
		p := &passes[i]
		p.Notices = append([]Notice{}, about[p.ID]...)
		if p.EndedAt != nil && p.Status != models.PassExpired {
			if d := int(dayOf(*p.EndedAt).Sub(today).Hours() / 24); d >= 0 {
				p.DaysLeft = &d
			}
		}
	}
	return nil
}

// dayOf is t's date in the gym's zone, as midnight UTC (for counting days).
func dayOf(t time.Time) time.Time {
	y, m, d := t.In(models.Seoul).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
