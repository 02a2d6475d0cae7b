package benchmark

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"
)

// The naive design a user would write with asynq alone: one task per item,
// each reading its row and updating it in its own transaction.
const (
	TaskNaiveUse    = "bench:naive-use"
	TaskNaiveExpire = "bench:naive-expire"
	naiveQueue      = "bench-naive"
)

type naivePayload struct {
	ID    int64  `json:"id"`
	RunAt string `json:"run_at"`
}

// NaiveMux serves the naive tasks.
func NaiveMux(db *bun.DB) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(TaskNaiveUse, func(ctx context.Context, t *asynq.Task) error {
		var p naivePayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return err
		}
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var b struct {
				PassID   int64 `bun:"pass_id"`
				UsedPass bool  `bun:"used_pass"`
			}
			err := tx.NewRaw("SELECT pass_id, used_pass FROM booking WHERE id = ? FOR UPDATE", p.ID).Scan(ctx, &b)
			if errors.Is(err, sql.ErrNoRows) || b.UsedPass {
				return nil
			}
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE pass SET remaining_count = remaining_count - 1 WHERE id = ? AND remaining_count IS NOT NULL", b.PassID); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, "UPDATE booking SET used_pass = true WHERE id = ?", p.ID)
			return err
		})
	})
	mux.HandleFunc(TaskNaiveExpire, func(ctx context.Context, t *asynq.Task) error {
		var p naivePayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return err
		}
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var st string
			if err := tx.NewRaw("SELECT status FROM pass WHERE id = ? FOR UPDATE", p.ID).Scan(ctx, &st); err != nil {
				return fmt.Errorf("read pass %d: %w", p.ID, err)
			}
			switch st {
			case "PROGRESSED":
				_, err := tx.ExecContext(ctx, "UPDATE pass SET status = 'EXPIRED', expired_at = ? WHERE id = ?", p.RunAt, p.ID)
				return err
			case "READY":
				_, err := tx.ExecContext(ctx, "UPDATE pass SET status = 'PROGRESSED' WHERE id = ?", p.ID)
				return err
			}
			return nil
		})
	})
	return mux
}
