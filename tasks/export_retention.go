package tasks

// Export retention: finished exports are offered again for ExportRetention,
// then expire with their files.

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/passbatch/passbatch/storage"
)

// ExpireExports marks COMPLETED exports past their retention, and FAILED
// ones not restarted within it, EXPIRED and removes their files (the file
// and any part files left by a failure). It runs before every export job,
// outside any transaction: the files go first, then the status, so a crash
// in between only repeats the (idempotent) removal next time.
func ExpireExports(ctx context.Context, db bun.IDB, store storage.Store, now time.Time) (int, error) {
	const due = `(status = 'COMPLETED' AND expires_at <= ?) OR (status = 'FAILED' AND modified_at <= ?)`
	var ids []int64
	if err := db.NewRaw(`SELECT id FROM export WHERE `+due+` ORDER BY id`, now, now.Add(-ExportRetention)).Scan(ctx, &ids); err != nil {
		return 0, fmt.Errorf("find expired exports: %w", err)
	}
	for _, id := range ids {
		files, err := store.List(ctx, fmt.Sprintf("exports/%d/", id))
		if err != nil {
			return 0, fmt.Errorf("expire export %d: %w", id, err)
		}
		for _, f := range files {
			if err := store.Delete(ctx, f.Key); err != nil {
				return 0, fmt.Errorf("expire export %d: %w", id, err)
			}
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := exec(ctx, db, "expire exports", `UPDATE export SET status = 'EXPIRED', modified_at = now() WHERE id = ANY(?) AND (`+due+`)`,
		pgdialect.Array(ids), now, now.Add(-ExportRetention))
	return int(n), err
}
