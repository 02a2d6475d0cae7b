package gym

import (
	"context"
	"fmt"
	"time"

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
	return out, nil
}
