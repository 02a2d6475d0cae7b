package gym

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/passbatch/passbatch/models"
)

// PackageRequest creates a package: a name, a number of uses (nil:
// unlimited) and a period in days (nil: no end).
type PackageRequest struct {
	Name       string `json:"name"`
	Count      *int   `json:"count"`
	PeriodDays *int   `json:"period_days"`
}

// Validate trims and checks r, naming the first field at fault. The API
// and the admin pages both go through it.
func (r *PackageRequest) Validate() error {
	if errs := r.Problems(); len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// Problems trims and checks r and returns every field at fault, in form
// order (the pages show them all at once).
func (r *PackageRequest) Problems() []*FieldError {
	r.Name = strings.TrimSpace(r.Name)
	var errs []*FieldError
	switch {
	case r.Name == "":
		errs = append(errs, &FieldError{Field: "name", Message: "required"})
	case len([]rune(r.Name)) > 100:
		errs = append(errs, &FieldError{Field: "name", Message: "at most 100 characters"})
	}
	if r.Count != nil && (*r.Count <= 0 || *r.Count > 10000) {
		errs = append(errs, &FieldError{Field: "count", Message: "must be 1 to 10000, or null for unlimited"})
	}
	if r.PeriodDays != nil && (*r.PeriodDays <= 0 || *r.PeriodDays > 3650) {
		errs = append(errs, &FieldError{Field: "period_days", Message: "must be 1 to 3650, or null for no end"})
	}
	return errs
}

// CreatePackage validates and creates a package.
func (s *Service) CreatePackage(ctx context.Context, r PackageRequest) (*models.Package, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	p := &models.Package{Name: r.Name, Count: r.Count, PeriodDays: r.PeriodDays}
	if _, err := s.DB.NewInsert().Model(p).Returning("*").Exec(ctx); err != nil {
		return nil, fmt.Errorf("create package: %w", err)
	}
	return p, nil
}

// Packages lists packages by id, after p.After.
func (s *Service) Packages(ctx context.Context, p Page) ([]models.Package, error) {
	out := []models.Package{}
	if err := s.DB.NewSelect().Model(&out).Where("id > ?", p.After).Order("id").Limit(int64(p.limit())).Scan(ctx); err != nil {
		return nil, fmt.Errorf("list packages: %w", err)
	}
	return out, nil
}

// Package returns package id.
func (s *Service) Package(ctx context.Context, id int64) (*models.Package, error) {
	p := new(models.Package)
	err := s.DB.NewSelect().Model(p).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("package")
	}
	if err != nil {
		return nil, fmt.Errorf("load package %d: %w", id, err)
	}
	return p, nil
}

// PatchPackage applies a JSON merge patch ({"name"}, {"count": null} for
// unlimited, {"period_days"}) to package id and validates the result as a
// new package would be. Passes already granted keep their counts and
// periods; the change applies to grants from now on.
func (s *Service) PatchPackage(ctx context.Context, id int64, patch []byte) (*models.Package, error) {
	p, err := s.Package(ctx, id)
	if err != nil {
		return nil, err
	}
	r := PackageRequest{Name: p.Name, Count: p.Count, PeriodDays: p.PeriodDays}
	d := json.NewDecoder(bytes.NewReader(patch))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return nil, &FieldError{Field: jsonField(err), Message: "want {\"name\", \"count\", \"period_days\"} with a text and whole numbers or null"}
	}
	return s.UpdatePackage(ctx, id, r)
}

// UpdatePackage validates r and stores it as package id.
func (s *Service) UpdatePackage(ctx context.Context, id int64, r PackageRequest) (*models.Package, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	p := &models.Package{ID: id}
	res, err := s.DB.NewUpdate().Model(p).Set("name = ?", r.Name).Set("count = ?", r.Count).Set("period_days = ?", r.PeriodDays).
		Set("modified_at = now()").WherePK().Returning("*").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("update package %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, notFound("package")
	}
	return p, nil
}

// RetirePackage retires package id: no new grants of it; its passes keep
// working. Retiring twice is a conflict.
func (s *Service) RetirePackage(ctx context.Context, id int64) (*models.Package, error) {
	p := &models.Package{ID: id}
	res, err := s.DB.NewUpdate().Model(p).Set("retired_at = now()").Set("modified_at = now()").
		WherePK().Where("retired_at IS NULL").Returning("*").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("retire package %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Package(ctx, id); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("package %d is already retired: %w", id, ErrConflict)
	}
	return p, nil
}

// jsonField names the field a JSON decoding error is about, if it says.
func jsonField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return strings.Trim(f, `"`)
	}
	return ""
}
