package gym

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/models"
)

// Member is a gym member as admins list them (no password, no session).
type Member struct {
	bun.BaseModel `bun:"table:users"`

	ID        int64     `bun:"id" json:"id"`
	Name      string    `bun:"name" json:"name"`
	Email     string    `bun:"email" json:"email"`
	Phone     string    `bun:"phone" json:"phone"`
	Role      string    `bun:"role" json:"role"`
	Status    string    `bun:"status" json:"status"`
	CreatedAt time.Time `bun:"created_at" json:"created_at"`
}

// Members lists members by id, after p.After; q, when set, keeps those
// whose name, email or phone contains it (case-insensitive; digits of a
// phone match with or without dashes).
func (s *Service) Members(ctx context.Context, q string, p Page) ([]Member, error) {
	q = strings.TrimSpace(q)
	if len([]rune(q)) > 100 {
		return nil, &FieldError{Field: "q", Message: "at most 100 characters"}
	}
	out := []Member{}
	sel := s.DB.NewSelect().Model(&out).Where("id > ?", p.After).Order("id").Limit(int64(p.limit()))
	if q != "" {
		like := "%" + escapeLike(q) + "%"
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, q)
		sel = sel.WhereGroup(" AND ", func(w *bun.SelectQuery) *bun.SelectQuery {
			w = w.Where("name ILIKE ?", like).WhereOr("email ILIKE ?", like).WhereOr("phone ILIKE ?", like)
			if len(digits) >= 3 {
				w = w.WhereOr("regexp_replace(phone, '[^0-9]', '', 'g') LIKE ?", "%"+digits+"%")
			}
			return w
		})
	}
	if err := sel.Scan(ctx); err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return out, nil
}

// escapeLike escapes LIKE's wildcards in s.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// MemberDetail is a member with their passes, latest bookings and notices.
type MemberDetail struct {
	Member
	Passes   []Pass    `json:"passes"`
	Bookings []Booking `json:"bookings"`
	Notices  []Notice  `json:"notices"`
	Groups   []Group   `json:"groups"`
}

// Member returns member id with their passes, their 50 latest bookings and
// notices, and their groups.
func (s *Service) Member(ctx context.Context, id int64) (*MemberDetail, error) {
	d := &MemberDetail{}
	err := s.DB.NewSelect().Model(&d.Member).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("member")
	}
	if err != nil {
		return nil, fmt.Errorf("load member %d: %w", id, err)
	}
	if d.Passes, err = s.Passes(ctx, id, Page{Limit: 200}); err != nil {
		return nil, err
	}
	if d.Bookings, err = s.Bookings(ctx, id, Page{Limit: 50}); err != nil {
		return nil, err
	}
	if d.Notices, err = s.Notices(ctx, id, Page{Limit: 50}); err != nil {
		return nil, err
	}
	d.Groups = []Group{}
	if err := s.groupQuery(&d.Groups).Where("user_group.id IN (SELECT user_group_id FROM user_group_mapping WHERE user_id = ?)", id).
		Order("user_group.id").Scan(ctx); err != nil {
		return nil, fmt.Errorf("groups of member %d: %w", id, err)
	}
	return d, nil
}

// SetMemberActive activates or deactivates member id. An inactive member
// cannot log in (their sessions end) and gets no bulk grants; their
// passes and bookings stay.
func (s *Service) SetMemberActive(ctx context.Context, id int64, active bool) (*MemberDetail, error) {
	status := models.UserInactive
	if active {
		status = models.UserActive
	}
	res, err := s.DB.NewUpdate().Model((*models.User)(nil)).Set("status = ?", status).Set("modified_at = now()").
		Where("id = ? AND role = 'user'", id).Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("set member %d %s: %w", id, status, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, notFound("member")
	}
	return s.Member(ctx, id)
}
