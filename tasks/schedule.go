package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"

	"github.com/passbatch/passbatch/batch"
)

// Entry is one job's place in the scheduler's cron table.
type Entry struct {
	Job    string
	Cron   string
	EnvVar string
}

// DefaultSchedule is DESIGN §5's cron table; each line can be overridden by
// its environment variable (a cron expression, or "off").
var DefaultSchedule = []Entry{
	{JobExpirePasses, "* * * * *", "SCHEDULE_EXPIRE_PASSES"},
	{JobAddPasses, "* * * * *", "SCHEDULE_ADD_PASSES"},
	{JobNotifyBeforeClass, "* * * * *", "SCHEDULE_NOTIFY_BEFORE_CLASS"},
	{JobUsePasses, "*/10 * * * *", "SCHEDULE_USE_PASSES"},
	{JobMakeStatistics, "5 * * * *", "SCHEDULE_MAKE_STATISTICS"},
	{JobNotifyBeforeExpiry, "0 9 * * *", "SCHEDULE_NOTIFY_BEFORE_EXPIRY"},
	{JobPurgeIdempotencyKeys, "23 * * * *", "SCHEDULE_PURGE_IDEMPOTENCY_KEYS"},
	{JobExpireExports, "17 * * * *", "SCHEDULE_EXPIRE_EXPORTS"},
	{JobPurgeJobRepository, "41 3 * * *", "SCHEDULE_PURGE_JOB_REPOSITORY"},
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Schedule returns the cron table with overrides (by variable, as
// config.Config.Schedule holds them), without the entries switched off. A
// malformed override is an error naming the variable.
func Schedule(overrides map[string]string) ([]Entry, error) {
	var out []Entry
	for _, e := range DefaultSchedule {
		if v := strings.TrimSpace(overrides[e.EnvVar]); v != "" {
			if v == "off" {
				continue
			}
			if _, err := cronParser.Parse(v); err != nil {
				return nil, fmt.Errorf("%s: want a cron expression (5 fields) or off: %w", e.EnvVar, err)
			}
			e.Cron = v
		}
		out = append(out, e)
	}
	return out, nil
}

// TaskLaunch is the scheduler's task: launch a job for the tick it fired on.
const TaskLaunch = "schedule:launch"

type launchPayload struct {
	Job  string `json:"job"`
	Cron string `json:"cron"`
}

// NewLaunchTask returns the task the scheduler enqueues for e.
func NewLaunchTask(e Entry) *asynq.Task {
	b, _ := json.Marshal(launchPayload{Job: e.Job, Cron: e.Cron})
	return asynq.NewTask(TaskLaunch, b)
}

// LastTick returns the latest time spec fires at or before now.
func LastTick(spec string, now time.Time) (time.Time, error) {
	s, err := cronParser.Parse(spec)
	if err != nil {
		return time.Time{}, err
	}
	now = now.UTC()
	// Walk forward from a day (then a year) back; fine for minute specs.
	for _, back := range []time.Duration{25 * time.Hour, 24 * 400 * time.Hour} {
		var last time.Time
		for t := s.Next(now.Add(-back)); !t.After(now); t = s.Next(t) {
			last = t
		}
		if !last.IsZero() {
			return last, nil
		}
	}
	return time.Time{}, fmt.Errorf("cron %q did not fire in the last 400 days", spec)
}

// LaunchHandler launches the payload's job with run.at = the cron tick the
// task belongs to (the latest tick at or before now). Two schedulers firing
// the same tick therefore ask for the same job instance, and the launcher
// lets one execution through; the others are refused and dropped here.
func LaunchHandler(eng *batch.Engine, now func() time.Time) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		var p launchPayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return fmt.Errorf("launch task: %v: %w", err, asynq.SkipRetry)
		}
		tick, err := LastTick(p.Cron, now())
		if err != nil {
			return fmt.Errorf("launch task: %v: %w", err, asynq.SkipRetry)
		}
		params := batch.Params{batch.ParamRunAt: {Value: tick.Format(time.RFC3339), Identifying: true}}
		_, err = eng.Launch(ctx, p.Job, params)
		switch {
		case errors.Is(err, batch.ErrAlreadyComplete), errors.Is(err, batch.ErrAlreadyRunning):
			return nil
		case errors.Is(err, batch.ErrUnknownJob):
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	}
}

// CatchUp launches each entry's job for its latest tick at or before now,
// as a cron that fires once after downtime would (a missed tick is not
// lost). The instance of that tick may exist already — run by another
// scheduler, or before a restart — and is then refused, which is fine.
func CatchUp(ctx context.Context, eng *batch.Engine, entries []Entry, now time.Time, log *slog.Logger) {
	for _, e := range entries {
		tick, err := LastTick(e.Cron, now)
		if err != nil {
			continue
		}
		p := batch.Params{batch.ParamRunAt: {Value: tick.Format(time.RFC3339), Identifying: true}}
		je, err := eng.Launch(ctx, e.Job, p)
		switch {
		case err == nil:
			log.InfoContext(ctx, "catch-up launch", "job", e.Job, "run_at", tick, "job_execution_id", je.JobExecutionID)
		case errors.Is(err, batch.ErrAlreadyComplete), errors.Is(err, batch.ErrAlreadyRunning):
		default:
			log.WarnContext(ctx, "catch-up launch failed", "job", e.Job, "err", err)
		}
	}
}

// QueueSchedule is the queue of grant and launch tasks.
const QueueSchedule = "schedule"
