package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/process"
)

// jobsPurge deletes (or with --dry-run counts) the finished work older
// than --before: see batch.Purge.
func jobsPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("jobs purge", stderr)
	beforeArg := fs.String("before", "", "purge what finished before this date (YYYY-MM-DD, midnight in Asia/Seoul) or instant (RFC 3339); required")
	dry := fs.Bool("dry-run", false, "count what would be deleted, delete nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("usage: ptctl jobs purge --before DATE [--dry-run]")
	}
	before, err := parseBefore(*beforeArg, time.Now())
	if err != nil {
		return usageErr("--before: %v", err)
	}
	cfg, err := config.FromEnv(config.Need{})
	if err != nil {
		return err
	}
	if os.Getenv("LOG_LEVEL") == "" {
		cfg.LogLevel = slog.LevelWarn
	}
	sys, err := process.Open(ctx, cfg, cfg.Logger(), "passbatch-ptctl")
	if err != nil {
		return err
	}
	defer sys.Close()
	r, err := batch.Purge(ctx, sys.DB, before, *dry)
	if err != nil {
		return err
	}
	verb := "deleted"
	if *dry {
		verb = "would delete"
	}
	fmt.Fprintf(stdout, "%s %d job instances, %d executions and %d step executions that finished before %s\n",
		verb, r.Instances, r.Executions, r.Steps, before.Format(time.RFC3339))
	return nil
}

// parseBefore reads --before: a date (midnight in the gym's zone) or an
// RFC 3339 instant, not in the future.
func parseBefore(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, fmt.Errorf("required (a date such as 2026-09-01, or an RFC 3339 instant)")
	}
	t, err := time.ParseInLocation("2006-01-02", v, models.Seoul)
	if err != nil {
		if t, err = time.Parse(time.RFC3339, v); err != nil {
			return time.Time{}, fmt.Errorf("want a date such as 2026-09-01 or an RFC 3339 instant, got %q", v)
		}
	}
	if t.After(now) {
		return time.Time{}, fmt.Errorf("%s is in the future: a purge only deletes work that has finished", v)
	}
	return t, nil
}
