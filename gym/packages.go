package gym

import (
	"context"
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

// Validate trims and checks r, naming the field at fault.
func (r *PackageRequest) Validate() error {
	r.Name = strings.TrimSpace(r.Name)
	switch {
	case r.Name == "":
		return &FieldError{Field: "name", Message: "required"}
	case len([]rune(r.Name)) > 100:
		return &FieldError{Field: "name", Message: "at most 100 characters"}
	case r.Count != nil && (*r.Count <= 0 || *r.Count > 10000):
		return &FieldError{Field: "count", Message: "must be 1 to 10000, or null for unlimited"}
	case r.PeriodDays != nil && (*r.PeriodDays <= 0 || *r.PeriodDays > 3650):
		return &FieldError{Field: "period_days", Message: "must be 1 to 3650, or null for no end"}
	}
	return nil
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
