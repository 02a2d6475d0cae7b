package tasks

// Export retention: finished exports are offered again for ExportRetention,
// then expire with their files.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/storage"
)

// ExpireExports marks COMPLETED exports past their retention at now, and
// FAILED ones not restarted within it, EXPIRED and removes their files (the
// file and any part files left by a failure). It runs outside any
// transaction: an export's files go first, then its status, so a crash in
// between only repeats the (idempotent) removal next time. An export whose
// files cannot be removed keeps its status; the others expire, and the
// errors are returned together.
func ExpireExports(ctx context.Context, db bun.IDB, store storage.Store, now time.Time) (int, error) {
	const due = `(status = 'COMPLETED' AND expires_at <= ?) OR (status = 'FAILED' AND modified_at <= ?)`
	var ids []int64
	if err := db.NewRaw(`SELECT id FROM export WHERE `+due+` ORDER BY id`, now, now.Add(-ExportRetention)).Scan(ctx, &ids); err != nil {
		return 0, fmt.Errorf("find expired exports: %w", err)
	}
	var removed []int64
	var errs []error
	for _, id := range ids {
		if err := removeExportFiles(ctx, store, id); err != nil {
			errs = append(errs, fmt.Errorf("expire export %d: %w", id, err))
			continue
		}
		removed = append(removed, id)
	}
	if len(removed) == 0 {
		return 0, errors.Join(errs...)
	}
	n, err := exec(ctx, db, "expire exports", `UPDATE export SET status = 'EXPIRED', modified_at = now() WHERE id = ANY(?) AND (`+due+`)`,
		pgdialect.Array(removed), now, now.Add(-ExportRetention))
	return int(n), errors.Join(append(errs, err)...)
}

// removeExportFiles removes every file of export id.
func removeExportFiles(ctx context.Context, store storage.Store, id int64) error {
	files, err := store.List(ctx, fmt.Sprintf("exports/%d/", id))
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := store.Delete(ctx, f.Key); err != nil {
			return err
		}
	}
	return nil
}
