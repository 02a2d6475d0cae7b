package tasks

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Registered is a cron entry a scheduler registered, as the api shows it.
type Registered struct {
	bun.BaseModel `bun:"table:schedule_entry"`
	Job           string    `bun:"job_name,pk" json:"job"`
	Cron          string    `bun:"cron,notnull" json:"cron"`
	RegisteredBy  string    `bun:"registered_by,notnull" json:"registered_by"`
	RegisteredAt  time.Time `bun:"modified_at,nullzero,notnull,default:current_timestamp" json:"registered_at"`
	// Next is the next tick after now (UTC cron), filled by Registrations.
	Next *time.Time `bun:"-" json:"next_tick,omitempty"`
}

// Register records entries as the cron table in use, registered by who (a
// scheduler's host and pid): one transaction replaces what an earlier
// scheduler recorded, so a job switched off disappears.
func Register(ctx context.Context, db bun.IDB, entries []Entry, who string) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		jobs := make([]string, 0, len(entries))
		rows := make([]Registered, 0, len(entries))
		for _, e := range entries {
			jobs = append(jobs, e.Job)
			rows = append(rows, Registered{Job: e.Job, Cron: e.Cron, RegisteredBy: who})
		}
		q := tx.NewDelete().Model((*Registered)(nil))
		if len(jobs) > 0 {
			q = q.Where("job_name NOT IN (?)", bun.In(jobs))
		} else {
			q = q.Where("true")
		}
		if _, err := q.Exec(ctx); err != nil {
			return fmt.Errorf("register schedule: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		_, err := tx.NewInsert().Model(&rows).On("CONFLICT (job_name) DO UPDATE").
			Set("cron = EXCLUDED.cron, registered_by = EXCLUDED.registered_by, modified_at = now()").Exec(ctx)
		if err != nil {
			return fmt.Errorf("register schedule: %w", err)
		}
		return nil
	})
}

// Registrations returns the registered cron table by job, each with its
// next tick after now.
func Registrations(ctx context.Context, db bun.IDB, now time.Time) (map[string]Registered, error) {
	var rows []Registered
	if err := db.NewSelect().Model(&rows).Order("job_name").Scan(ctx); err != nil {
		return nil, fmt.Errorf("read the registered schedule: %w", err)
	}
	out := make(map[string]Registered, len(rows))
	for _, r := range rows {
		if s, err := cronParser.Parse(r.Cron); err == nil {
			next := s.Next(now.UTC())
			r.Next = &next
		}
		out[r.Job] = r
	}
	return out, nil
}
