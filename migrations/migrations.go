// Package migrations holds the embedded SQL schema of passbatch and applies it
// through bun's migrate package.
//
// Files are named <timestamp>_<name>.up.sql / .down.sql; statements inside a
// file are separated by "--bun:split". Applying is serialized across processes
// with a Postgres advisory lock, so two `ptctl migrate` runs at once are safe.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

//go:embed *.sql
var files embed.FS

// advisoryLockKey serializes migrations across processes ("passbat" in ASCII).
const advisoryLockKey = 0x7061737362617463

// Migrations returns the project's migrations, discovered from the embedded files.
func Migrations() (*migrate.Migrations, error) {
	m := migrate.NewMigrations()
	if err := m.Discover(files); err != nil {
		return nil, fmt.Errorf("discover migrations: %w", err)
	}
	return m, nil
}

// Status is one migration and whether it is applied.
type Status struct {
	Name    string
	Comment string
	Applied bool
}

func newMigrator(ctx context.Context, db *bun.DB) (*migrate.Migrator, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	m := migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("init migration tables: %w", err)
	}
	return m, nil
}

// Up applies every pending migration and returns the names it applied (empty
// when there was nothing to do).
func Up(ctx context.Context, db *bun.DB) ([]string, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", int64(advisoryLockKey)); err != nil {
		return nil, fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", int64(advisoryLockKey)) //nolint:errcheck // released with the session anyway

	m, err := newMigrator(ctx, db)
	if err != nil {
		return nil, err
	}
	group, err := m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var names []string
	if group != nil {
		for _, mig := range group.Migrations {
			names = append(names, mig.Name+"_"+mig.Comment)
		}
	}
	return names, nil
}

// List reports every known migration with its applied state, oldest first.
func List(ctx context.Context, db *bun.DB) ([]Status, error) {
	m, err := newMigrator(ctx, db)
	if err != nil {
		return nil, err
	}
	ms, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]Status, 0, len(ms))
	for _, mig := range ms {
		out = append(out, Status{Name: mig.Name, Comment: mig.Comment, Applied: mig.IsApplied()})
	}
	return out, nil
}

// Files returns the embedded migration files.
func Files() (fs.FS, error) { return files, nil }
