package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/migrations"
)

// openDB loads the config (DATABASE_URL only) and connects.
func openDB(ctx context.Context) (*bun.DB, config.Config, error) {
	cfg, err := config.FromEnv(config.Need{})
	if err != nil {
		return nil, cfg, err
	}
	db, err := database.Open(ctx, cfg.DatabaseURL, database.Options{MaxOpenConns: 8})
	return db, cfg, err
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args with flags before, between or after the
// positional arguments (`jobs status 7 --watch`); fs.Args() holds the
// positional ones afterwards.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return &exitError{0, err}
			}
			return usageErr("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func cmdMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("migrate", os.Stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) > 1 || (len(rest) == 1 && rest[0] != "status") {
		return usageErr("usage: ptctl migrate [status]")
	}
	db, _, err := openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(rest) == 1 {
		list, err := migrations.List(ctx, db)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MIGRATION\tSTATUS")
		for _, m := range list {
			st := "pending"
			if m.Applied {
				st = "applied"
			}
			fmt.Fprintf(tw, "%s_%s\t%s\n", m.Name, m.Comment, st)
		}
		return tw.Flush()
	}
	start := time.Now()
	applied, err := migrations.Up(ctx, db)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "nothing to do: the schema is up to date")
		return nil
	}
	for _, n := range applied {
		fmt.Fprintln(stdout, "applied", n)
	}
	fmt.Fprintf(stdout, "applied %d migration(s) in %s\n", len(applied), time.Since(start).Round(time.Millisecond))
	return nil
}
