package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/tasks"
)

func cmdSeed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("seed", stderr)
	users := fs.Int("users", 0, "bulk: how many users to create")
	bookings := fs.Int("bookings", 0, "bulk: how many bookings to create")
	perUser := fs.Int("passes-per-user", 1, "bulk: passes per user")
	ifEmpty := fs.Bool("if-empty", false, "demo: do nothing (exit 0) when the database already has users")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("seed: unexpected argument %q", fs.Arg(0))
	}
	bulk := *users > 0 || *bookings > 0
	switch {
	case *users < 0 || *bookings < 0:
		return usageErr("seed: --users and --bookings must not be negative")
	case bulk && *users == 0:
		return usageErr("seed: --bookings needs --users")
	case *perUser < 1 || *perUser > 100:
		return usageErr("seed: --passes-per-user must be 1 to 100")
	case bulk && *ifEmpty:
		return usageErr("seed: --if-empty applies to the demo seed only")
	}
	db, _, err := openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if bulk {
		start := time.Now()
		res, err := seed.Bulk(ctx, db, seed.BulkOptions{
			Users: *users, Bookings: *bookings, PassesPerUser: *perUser, Now: time.Now(),
			Progress: func(stage string, done, total int) {
				fmt.Fprintf(stderr, "seed: %s %d/%d\n", stage, done, total)
			},
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "seeded %+v in %s\n", *res, time.Since(start).Round(time.Millisecond))
		return nil
	}
	res, err := seed.Demo(ctx, db, time.Now())
	if errors.Is(err, seed.ErrNotEmpty) && *ifEmpty {
		fmt.Fprintln(stdout, "seed: the database has users already; leaving it as it is")
		return nil
	}
	if errors.Is(err, seed.ErrNotEmpty) {
		return &exitError{3, err}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded the demo gym: %+v\n", *res)
	return backfill(ctx, stdout)
}

// backfill queues make-statistics for each day of the demo's history, so
// the charts and the console start with a month; the workers run them.
// Without REDIS_URL it says how to do it later.
func backfill(ctx context.Context, stdout io.Writer) error {
	if os.Getenv("REDIS_URL") == "" {
		fmt.Fprintf(stdout, "seed: no REDIS_URL, statistics not queued; later: ptctl jobs launch make-statistics from=… to=…\n")
		return nil
	}
	svc, err := openService(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	ids, err := tasks.BackfillStatistics(ctx, svc.Engine, time.Now(), seed.HistoryDays)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seed: queued make-statistics for the last %d days (%d executions); the workers run them\n", seed.HistoryDays, len(ids))
	return nil
}
