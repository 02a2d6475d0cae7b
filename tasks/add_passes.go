package tasks

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
)

// ParamBulkPassID limits add-passes to one bulk pass (the grant task's).
const ParamBulkPassID = "bulk_pass_id"

// AddPassesJob declares add-passes: a tasklet that, one bulk pass per
// transaction, grants every active user of a READY bulk pass's group one
// pass (the bulk pass's count, else the package's; the bulk pass's period,
// else the package's) and marks the bulk pass COMPLETED. The unique
// (bulk_pass_id, user_id) makes a rerun or a duplicate grant nothing twice.
func AddPassesJob(d Deps) *batch.Job {
	return &batch.Job{
		Name:        JobAddPasses,
		Parameters:  []batch.ParamSpec{{Name: ParamBulkPassID, Type: batch.TypeLong, Description: "grant only this bulk pass (default: every due one)"}},
		Description: "이용권 일괄 지급: grant READY bulk passes whose time has come",
		Prepare: func(p batch.Params, now time.Time) (batch.Params, error) {
			if _, err := p.Int(ParamBulkPassID, 0); err != nil {
				return nil, err
			}
			return prepareRunAt(p, now)
		},
		Flow: []batch.Node{batch.NewTasklet("grant", grantTasklet)},
	}
}

func grantTasklet(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
	at := runAt(sc)
	only, _ := sc.Params.Int(ParamBulkPassID, 0)
	var bp struct {
		ID int64 `bun:"id"`
	}
	q := tx.NewSelect().TableExpr("bulk_pass").Column("id").
		Where("status = 'READY' AND started_at <= ?", at).OrderExpr("id").Limit(1).For("UPDATE SKIP LOCKED")
	if only > 0 {
		q = q.Where("id = ?", only)
	}
	if err := q.Scan(ctx, &bp); errors.Is(err, sql.ErrNoRows) {
		return batch.Finished, nil
	} else if err != nil {
		return batch.Finished, fmt.Errorf("find a bulk pass to grant: %w", err)
	}
	members, err := exec(ctx, tx, "count group", `SELECT 1 FROM bulk_pass b JOIN user_group_mapping m ON m.user_group_id = b.user_group_id
		JOIN users u ON u.id = m.user_id AND u.status = 'ACTIVE' WHERE b.id = ?`, bp.ID)
	if err != nil {
		return batch.Finished, err
	}
	granted, err := exec(ctx, tx, "grant passes", `INSERT INTO pass (package_id, user_id, bulk_pass_id, status, remaining_count, started_at, ended_at)
		SELECT b.package_id, m.user_id, b.id, 'PROGRESSED', coalesce(b.count, p.count), b.started_at,
		       coalesce(b.ended_at, b.started_at + make_interval(days => p.period_days))
		FROM bulk_pass b
		JOIN package p ON p.id = b.package_id
		JOIN user_group_mapping m ON m.user_group_id = b.user_group_id
		JOIN users u ON u.id = m.user_id AND u.status = 'ACTIVE'
		WHERE b.id = ?
		ORDER BY m.user_id
		ON CONFLICT (bulk_pass_id, user_id) DO NOTHING`, bp.ID)
	if err != nil {
		return batch.Finished, err
	}
	if _, err := exec(ctx, tx, "complete bulk pass", `UPDATE bulk_pass SET status = 'COMPLETED', modified_at = now() WHERE id = ?`, bp.ID); err != nil {
		return batch.Finished, err
	}
	sc.Counts.Read += members
	sc.Counts.Write += granted
	sc.Counts.Filter += members - granted
	sc.Context["last_bulk_pass_id"] = bp.ID
	return batch.Continuable, nil
}

// TaskGrantBulkPass runs add-passes for one bulk pass at its start time.
const TaskGrantBulkPass = "grant:bulk-pass"

// GrantPayload is a grant task's payload.
type GrantPayload struct {
	BulkPassID int64     `json:"bulk_pass_id"`
	At         time.Time `json:"at"`
}

// NewGrantTask returns the task that grants bulk pass id at time at;
// enqueue it with asynq.ProcessAt(at) and asynq.TaskID(GrantTaskID(id)).
func NewGrantTask(id int64, at time.Time) (*asynq.Task, error) {
	b, err := json.Marshal(GrantPayload{BulkPassID: id, At: at.UTC()})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TaskGrantBulkPass, b), nil
}

// GrantTaskID is the grant task's ID: one per bulk pass.
func GrantTaskID(id int64) string { return "grant:bulk-pass:" + strconv.FormatInt(id, 10) }

// GrantHandler launches add-passes for the task's bulk pass with run.at =
// its grant time. An instance already complete or running means the grant
// is done or under way (a duplicate task, or the per-minute sweep won).
func GrantHandler(eng *batch.Engine) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		var p GrantPayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil || p.BulkPassID <= 0 {
			return fmt.Errorf("grant task: bad payload %q: %w", t.Payload(), asynq.SkipRetry)
		}
		params := batch.Params{
			batch.ParamRunAt: {Value: p.At.UTC().Format(time.RFC3339Nano), Identifying: true},
			ParamBulkPassID:  {Value: strconv.FormatInt(p.BulkPassID, 10), Identifying: true},
		}
		_, err := eng.Launch(ctx, JobAddPasses, params)
		if errors.Is(err, batch.ErrAlreadyComplete) || errors.Is(err, batch.ErrAlreadyRunning) {
			return nil
		}
		return err
	}
}
