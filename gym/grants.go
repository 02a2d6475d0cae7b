package gym

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/tasks"
)

// Idempotency makes a request repeatable: the same Key in the same Scope
// (who asked, on which route) with the same RequestHash returns the first
// answer and changes nothing; with another hash it is refused.
type Idempotency struct {
	Scope, Key, RequestHash string
}

// Grant creates an ad-hoc grant in one transaction (its group, for
// explicit users, and its READY bulk pass) and then enqueues the grant task
// for its time; a lost enqueue is caught by the per-minute add-passes run.
// With idem, a repeat returns the first answer as replay and grants
// nothing; a repeat with another body is a FieldError on Idempotency-Key.
func (s *Service) Grant(ctx context.Context, r tasks.GrantRequest, idem *Idempotency) (*tasks.Grant, json.RawMessage, error) {
	g, replay, err := idempotent(ctx, s.DB, idem, func(ctx context.Context, tx bun.Tx) (*tasks.Grant, error) {
		return tasks.CreateGrant(ctx, tx, r, s.now())
	})
	if err != nil || replay != nil {
		return nil, replay, err
	}
	s.enqueueGrant(ctx, g)
	return g, nil, nil
}

// idempotent runs do in one transaction under idem (nil: none): the first
// use of the key records do's answer; a repeat returns that answer as
// replay and runs nothing.
func idempotent[T any](ctx context.Context, db *bun.DB, idem *Idempotency, do func(ctx context.Context, tx bun.Tx) (T, error)) (T, json.RawMessage, error) {
	var out T
	var replay json.RawMessage
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if idem != nil {
			var fresh bool
			if replay, fresh, err = claimKey(ctx, tx, idem); err != nil || !fresh {
				return err
			}
		}
		if out, err = do(ctx, tx); err != nil {
			return err
		}
		if idem != nil {
			return saveAnswer(ctx, tx, idem, out)
		}
		return nil
	})
	return out, replay, err
}

// claimKey records idem's key, or finds its first answer (fresh false).
func claimKey(ctx context.Context, tx bun.Tx, idem *Idempotency) (replay json.RawMessage, fresh bool, err error) {
	res, err := tx.NewRaw(`INSERT INTO idempotency_key (key, scope, request_hash, status, response) VALUES (?, ?, ?, 0, '{}')
		ON CONFLICT DO NOTHING`, idem.Key, idem.Scope, idem.RequestHash).Exec(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("record idempotency key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil, true, nil
	}
	var prev struct {
		Hash     string          `bun:"request_hash"`
		Response json.RawMessage `bun:"response"`
	}
	if err := tx.NewRaw("SELECT request_hash, response FROM idempotency_key WHERE scope = ? AND key = ? FOR UPDATE",
		idem.Scope, idem.Key).Scan(ctx, &prev); err != nil {
		return nil, false, fmt.Errorf("load idempotency key: %w", err)
	}
	if prev.Hash != idem.RequestHash {
		return nil, false, &FieldError{Field: "Idempotency-Key", Message: "this key was used with another request body"}
	}
	return prev.Response, false, nil
}

func saveAnswer(ctx context.Context, tx bun.Tx, idem *Idempotency, answer any) error {
	b, err := json.Marshal(answer)
	if err != nil {
		return err
	}
	_, err = tx.NewRaw("UPDATE idempotency_key SET status = 202, response = ? WHERE scope = ? AND key = ?",
		string(b), idem.Scope, idem.Key).Exec(ctx)
	return err
}

// enqueueGrant queues the grant task at its time; the bulk pass is saved
// already, so a failure here only delays the grant to the next sweep.
func (s *Service) enqueueGrant(ctx context.Context, g *tasks.Grant) {
	task, err := tasks.NewGrantTask(g.BulkPassID, g.ScheduledAt)
	if err == nil {
		_, err = s.Client.EnqueueContext(ctx, task, asynq.ProcessAt(g.ScheduledAt), asynq.TaskID(tasks.GrantTaskID(g.BulkPassID)),
			asynq.Queue(tasks.QueueSchedule), asynq.MaxRetry(10))
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		s.log().WarnContext(ctx, "grant task not enqueued; the per-minute sweep will grant it", "bulk_pass_id", g.BulkPassID, "err", err)
	}
}

// BulkPass is a bulk pass as admins list it.
type BulkPass struct {
	ID          int64      `json:"id" bun:"id"`
	PackageName string     `json:"package_name" bun:"package_name"`
	GroupName   string     `json:"group_name" bun:"group_name"`
	UserGroupID int64      `json:"user_group_id" bun:"user_group_id"`
	Status      string     `json:"status" bun:"status"`
	Count       *int       `json:"count" bun:"count"`
	StartedAt   time.Time  `json:"started_at" bun:"started_at"`
	EndedAt     *time.Time `json:"ended_at" bun:"ended_at"`
	Granted     int        `json:"granted" bun:"granted"`
}

// BulkPasses lists bulk passes newest first, before the id p.After.
func (s *Service) BulkPasses(ctx context.Context, p Page) ([]BulkPass, error) {
	q := s.DB.NewSelect().TableExpr("bulk_pass AS b").
		ColumnExpr("b.id, k.name AS package_name, g.name AS group_name, b.user_group_id, b.status, b.count, b.started_at, b.ended_at").
		ColumnExpr("(SELECT count(*) FROM pass p WHERE p.bulk_pass_id = b.id) AS granted").
		Join("JOIN package AS k ON k.id = b.package_id").Join("JOIN user_group AS g ON g.id = b.user_group_id").
		OrderExpr("b.id DESC").Limit(int64(p.limit()))
	if p.After > 0 {
		q = q.Where("b.id < ?", p.After)
	}
	out := []BulkPass{}
	if err := q.Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("list bulk passes: %w", err)
	}
	return out, nil
}

// GrantGroup is a group a bulk grant can go to, with its size.
type GrantGroup struct {
	ID      int64  `bun:"id" json:"id"`
	Name    string `bun:"name" json:"name"`
	Members int    `bun:"members" json:"members"`
}

// GrantGroups lists the groups for the grant form (not the ones made for
// ad-hoc grants).
func (s *Service) GrantGroups(ctx context.Context) ([]GrantGroup, error) {
	var out []GrantGroup
	err := s.DB.NewRaw(`SELECT g.id, g.name, (SELECT count(*) FROM user_group_mapping m WHERE m.user_group_id = g.id) AS members
		FROM user_group g WHERE g.description <> 'made for an ad-hoc grant' ORDER BY g.id LIMIT 200`).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}
