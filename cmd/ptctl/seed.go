package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/passbatch/passbatch/seed"
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
	return nil
}
