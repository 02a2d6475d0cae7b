package gym

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/models"
)

// GroupRequest creates or edits a user group.
type GroupRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Validate trims and checks r, naming the first field at fault.
func (r *GroupRequest) Validate() error {
	if errs := r.Problems(); len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// Problems trims and checks r and returns every field at fault.
func (r *GroupRequest) Problems() []*FieldError {
	r.Name, r.Description = strings.TrimSpace(r.Name), strings.TrimSpace(r.Description)
	var errs []*FieldError
	switch {
	case r.Name == "":
		errs = append(errs, &FieldError{Field: "name", Message: "required"})
	case len([]rune(r.Name)) > 100:
		errs = append(errs, &FieldError{Field: "name", Message: "at most 100 characters"})
	}
	if len([]rune(r.Description)) > 500 {
		errs = append(errs, &FieldError{Field: "description", Message: "at most 500 characters"})
	}
	return errs
}

// Group is a user group with its member count.
type Group struct {
	models.UserGroup `bun:",extend"`
	Members          int `bun:"members" json:"members"`
}

func (s *Service) groupQuery(out any) *bun.SelectQuery {
	return s.DB.NewSelect().Model(out).
		ColumnExpr("user_group.*").
		ColumnExpr("(SELECT count(*) FROM user_group_mapping m WHERE m.user_group_id = user_group.id) AS members")
}

// Groups lists user groups by id, after p.After, with member counts.
func (s *Service) Groups(ctx context.Context, p Page) ([]Group, error) {
	out := []Group{}
	if err := s.groupQuery(&out).Where("user_group.id > ?", p.After).Order("user_group.id").Limit(int64(p.limit())).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// Group returns user group id with its member count.
func (s *Service) Group(ctx context.Context, id int64) (*Group, error) {
	g := new(Group)
	err := s.groupQuery(g).Where("user_group.id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user group")
	}
	if err != nil {
		return nil, fmt.Errorf("load group %d: %w", id, err)
	}
	return g, nil
}

// CreateGroup validates and creates a user group.
func (s *Service) CreateGroup(ctx context.Context, r GroupRequest) (*Group, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	g := &models.UserGroup{Name: r.Name, Description: r.Description}
	if _, err := s.DB.NewInsert().Model(g).Returning("*").Exec(ctx); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	return &Group{UserGroup: *g}, nil
}

// UpdateGroup validates r and stores it as group id.
func (s *Service) UpdateGroup(ctx context.Context, id int64, r GroupRequest) (*Group, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	res, err := s.DB.NewUpdate().Model((*models.UserGroup)(nil)).Set("name = ?", r.Name).Set("description = ?", r.Description).
		Set("modified_at = now()").Where("id = ?", id).Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("update group %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, notFound("user group")
	}
	return s.Group(ctx, id)
}

// GroupMembers lists group id's members by user id, after p.After.
func (s *Service) GroupMembers(ctx context.Context, id int64, p Page) ([]Member, error) {
	if _, err := s.Group(ctx, id); err != nil {
		return nil, err
	}
	out := []Member{}
	if err := s.DB.NewSelect().Model(&out).
		Where("id IN (SELECT user_id FROM user_group_mapping WHERE user_group_id = ?)", id).
		Where("id > ?", p.After).Order("id").Limit(int64(p.limit())).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list members of group %d: %w", id, err)
	}
	return out, nil
}

// MembersRequest names users to add to a group.
type MembersRequest struct {
	UserIDs []int64 `json:"user_ids"`
}

// AddMembers adds users to group id, all or none: an unknown user is a
// field error, one already in the group a conflict.
func (s *Service) AddMembers(ctx context.Context, id int64, r MembersRequest) (*Group, error) {
	if len(r.UserIDs) == 0 || len(r.UserIDs) > 1000 {
		return nil, &FieldError{Field: "user_ids", Message: "name 1 to 1000 members"}
	}
	if _, err := s.Group(ctx, id); err != nil {
		return nil, err
	}
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var unknown, already []int64
		if err := tx.NewRaw(`SELECT coalesce(array_agg(u) FILTER (WHERE NOT EXISTS (SELECT 1 FROM users WHERE id = u)), '{}'),
				coalesce(array_agg(u) FILTER (WHERE EXISTS (SELECT 1 FROM user_group_mapping WHERE user_group_id = ? AND user_id = u)), '{}')
			FROM unnest(?::bigint[]) AS u`, id, pgdialect.Array(r.UserIDs)).Scan(ctx, pgdialect.Array(&unknown), pgdialect.Array(&already)); err != nil {
			return fmt.Errorf("check members: %w", err)
		}
		if len(unknown) > 0 {
			return &FieldError{Field: "user_ids", Message: fmt.Sprintf("no such users: %v", unknown)}
		}
		if len(already) > 0 {
			return fmt.Errorf("users %v are already members: %w", already, ErrConflict)
		}
		// A concurrent add of the same user commits first: nothing is
		// inserted twice, and the request that lost is a conflict.
		res, err := tx.NewRaw(`INSERT INTO user_group_mapping (user_group_id, user_id) SELECT DISTINCT ?, u FROM unnest(?::bigint[]) AS u
			ON CONFLICT DO NOTHING`, id, pgdialect.Array(r.UserIDs)).Exec(ctx)
		if err != nil {
			return fmt.Errorf("add members: %w", err)
		}
		if n, _ := res.RowsAffected(); n != int64(distinct(r.UserIDs)) {
			return fmt.Errorf("some of users %v were added meanwhile: %w", r.UserIDs, ErrConflict)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Group(ctx, id)
}

// distinct counts the different ids.
func distinct(ids []int64) int {
	seen := make(map[int64]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	return len(seen)
}

// InGroup says which of ids are members of group id.
func (s *Service) InGroup(ctx context.Context, id int64, ids []int64) (map[int64]bool, error) {
	in := map[int64]bool{}
	if len(ids) == 0 {
		return in, nil
	}
	var members []int64
	if err := s.DB.NewRaw("SELECT user_id FROM user_group_mapping WHERE user_group_id = ? AND user_id = ANY(?)", id, pgdialect.Array(ids)).
		Scan(ctx, &members); err != nil {
		return nil, fmt.Errorf("members of group %d: %w", id, err)
	}
	for _, m := range members {
		in[m] = true
	}
	return in, nil
}

// RemoveMember takes user userID out of group id.
func (s *Service) RemoveMember(ctx context.Context, id, userID int64) (*Group, error) {
	res, err := s.DB.NewDelete().Model((*models.UserGroupMapping)(nil)).Where("user_group_id = ? AND user_id = ?", id, userID).Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("remove member: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, notFound("member of the group")
	}
	return s.Group(ctx, id)
}
