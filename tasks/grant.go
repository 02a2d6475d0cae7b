package tasks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/models"
)

// FieldError is a request the domain refuses, naming the field at fault.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// MaxGrantUsers bounds the explicit user list of one grant.
const MaxGrantUsers = 10000

// GrantRequest is an admin's ad-hoc grant: a package to a group or to a
// list of users, from StartedAt (default At) to EndedAt (default the
// package's period), granted at At (default now).
type GrantRequest struct {
	UserIDs     []int64    `json:"user_ids"`
	UserGroupID *int64     `json:"user_group_id"`
	PackageID   int64      `json:"package_id"`
	Count       *int       `json:"count"`
	StartedAt   *time.Time `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at"`
	At          *time.Time `json:"at"`
}

// Grant is a created grant: the READY bulk pass and when it is granted.
type Grant struct {
	BulkPassID  int64     `json:"bulk_pass_id"`
	UserGroupID int64     `json:"user_group_id"`
	Users       int       `json:"users"`
	ScheduledAt time.Time `json:"scheduled_at"`
}

// CreateGrant validates r and creates its READY bulk pass in db (for
// explicit users, with a group made for it). The caller enqueues the grant
// task (NewGrantTask) after committing; the per-minute add-passes run is
// the safety net if that enqueue is lost.
func CreateGrant(ctx context.Context, db bun.IDB, r GrantRequest, now time.Time) (*Grant, error) {
	at, start, err := r.times(now)
	if err != nil {
		return nil, err
	}
	if err := r.checkShape(); err != nil {
		return nil, err
	}
	var pkg models.Package
	if err := db.NewSelect().Model(&pkg).Where("id = ?", r.PackageID).Scan(ctx); errors.Is(err, sql.ErrNoRows) {
		return nil, &FieldError{"package_id", "no such package"}
	} else if err != nil {
		return nil, fmt.Errorf("load package: %w", err)
	}
	if pkg.RetiredAt != nil {
		return nil, &FieldError{"package_id", "this package is retired"}
	}
	if r.EndedAt != nil && !r.EndedAt.After(start) {
		return nil, &FieldError{"ended_at", "must be after started_at"}
	}
	g := &Grant{ScheduledAt: at}
	if r.UserGroupID != nil {
		g.UserGroupID, g.Users, err = groupMembers(ctx, db, *r.UserGroupID)
	} else {
		g.UserGroupID, g.Users, err = adhocGroup(ctx, db, r.UserIDs, at)
	}
	if err != nil {
		return nil, err
	}
	end := r.EndedAt
	if end == nil && pkg.PeriodDays != nil {
		e := start.AddDate(0, 0, *pkg.PeriodDays)
		end = &e
	}
	count := r.Count
	if count == nil {
		count = pkg.Count
	}
	bp := &models.BulkPass{PackageID: pkg.ID, UserGroupID: g.UserGroupID, Status: models.BulkPassReady, Count: count, StartedAt: start, EndedAt: end}
	if start.After(at) {
		// add-passes grants a bulk pass once it has started.
		g.ScheduledAt = start
	}
	if _, err := db.NewInsert().Model(bp).Returning("id").Exec(ctx); err != nil {
		return nil, fmt.Errorf("create bulk pass: %w", err)
	}
	g.BulkPassID = bp.ID
	return g, nil
}

// times checks the grant time (default now) and the passes' start
// (default the grant time).
func (r GrantRequest) times(now time.Time) (at, start time.Time, err error) {
	at = now
	if r.At != nil {
		if r.At.Before(now.Add(-time.Minute)) {
			return at, start, &FieldError{"at", "must not be in the past"}
		}
		if r.At.After(now.AddDate(1, 0, 0)) {
			return at, start, &FieldError{"at", "must be within a year"}
		}
		at = *r.At
	}
	start = at
	if r.StartedAt != nil {
		if r.StartedAt.Before(at.Add(-24 * time.Hour)) {
			return at, start, &FieldError{"started_at", "must not be more than a day before the grant time"}
		}
		start = *r.StartedAt
	}
	return at, start, nil
}

// checkShape checks what needs no database: a package, a sane count, and
// users or a group (not both, not too many users).
func (r GrantRequest) checkShape() error {
	if r.PackageID <= 0 {
		return &FieldError{"package_id", "required"}
	}
	if r.Count != nil && (*r.Count <= 0 || *r.Count > 10000) {
		return &FieldError{"count", "must be 1 to 10000"}
	}
	switch {
	case r.UserGroupID == nil && len(r.UserIDs) == 0:
		return &FieldError{"user_ids", "give user_ids or user_group_id"}
	case r.UserGroupID != nil && len(r.UserIDs) > 0:
		return &FieldError{"user_ids", "give user_ids or user_group_id, not both"}
	case len(r.UserIDs) > MaxGrantUsers:
		return &FieldError{"user_ids", fmt.Sprintf("at most %d users at once", MaxGrantUsers)}
	}
	return nil
}

// groupMembers checks that group id exists and has members; it returns it
// with its member count.
func groupMembers(ctx context.Context, db bun.IDB, id int64) (int64, int, error) {
	n, err := db.NewSelect().Model((*models.UserGroupMapping)(nil)).Where("user_group_id = ?", id).Count(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("count group: %w", err)
	}
	exists, err := db.NewSelect().Model((*models.UserGroup)(nil)).Where("id = ?", id).Exists(ctx)
	if err != nil {
		return 0, 0, err
	}
	if !exists {
		return 0, 0, &FieldError{"user_group_id", "no such group"}
	}
	if n == 0 {
		return 0, 0, &FieldError{"user_group_id", "the group has no members"}
	}
	return id, int(n), nil
}

// adhocGroup makes the group of an ad-hoc grant from ids, every one an
// active user (duplicates count once); it returns the group and its size.
func adhocGroup(ctx context.Context, db bun.IDB, ids []int64, at time.Time) (int64, int, error) {
	seen := map[int64]bool{}
	var uniq []int64
	for _, id := range ids {
		if id <= 0 {
			return 0, 0, &FieldError{"user_ids", "ids are positive numbers"}
		}
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	var found []int64
	if err := db.NewRaw("SELECT id FROM users WHERE id = ANY(?) AND status = 'ACTIVE' ORDER BY id", pgdialect.Array(uniq)).Scan(ctx, &found); err != nil {
		return 0, 0, fmt.Errorf("load users: %w", err)
	}
	if len(found) != len(uniq) {
		ok := map[int64]bool{}
		for _, id := range found {
			ok[id] = true
		}
		missing := []string{}
		for _, id := range uniq {
			if !ok[id] && len(missing) < 10 {
				missing = append(missing, fmt.Sprint(id))
			}
		}
		return 0, 0, &FieldError{"user_ids", "unknown or inactive users: " + strings.Join(missing, ", ")}
	}
	grp := &models.UserGroup{Name: fmt.Sprintf("grant %s", at.UTC().Format(time.RFC3339)), Description: "made for an ad-hoc grant"}
	if _, err := db.NewInsert().Model(grp).Returning("id").Exec(ctx); err != nil {
		return 0, 0, fmt.Errorf("create group: %w", err)
	}
	if _, err := db.NewRaw(`INSERT INTO user_group_mapping (user_group_id, user_id) SELECT ?, unnest(?::bigint[])`, grp.ID, pgdialect.Array(uniq)).Exec(ctx); err != nil {
		return 0, 0, fmt.Errorf("fill group: %w", err)
	}
	return grp.ID, len(uniq), nil
}
