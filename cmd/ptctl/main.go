// Command ptctl is passbatch's operator CLI: migrations, seed data, job
// control and benchmarks. Run `ptctl help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/passbatch/passbatch/config"
)

const usage = `ptctl — operate passbatch

Usage:
  ptctl migrate                 apply pending migrations
  ptctl migrate status          list migrations and whether each is applied
  ptctl seed [--if-empty]       load the demo gym (refuses a non-empty database)
  ptctl seed --users N --bookings M [--passes-per-user K]
                                load a large synthetic data set (COPY)
  ptctl jobs list [--name N] [--status S] [--limit L] [--json]
  ptctl jobs launch NAME [key=value ...] [-key=value ...] [--wait] [--json]
                                key=value is identifying, -key=value is not
  ptctl jobs status ID [--watch] [--json]
  ptctl jobs restart ID | stop ID | abandon ID | recover ID
  ptctl jobs purge --before DATE [--dry-run]
  ptctl bench [flags]           run the benchmarks (see ptctl bench -h)

Environment: DATABASE_URL (all), REDIS_URL (jobs, bench), LOG_LEVEL.
Exit status: 0 ok, 1 failure, 2 usage or configuration error,
3 refused by the job rules (already complete, already running, abandoned).
`

// exitError carries an exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitError{2, fmt.Errorf(format, a...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	var ce *config.Error
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.As(err, &ce):
		code = 2
	}
	fmt.Fprintln(os.Stderr, "ptctl:", err)
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageErr("no command given")
	}
	switch args[0] {
	case "migrate":
		return cmdMigrate(ctx, args[1:], stdout)
	case "seed":
		return cmdSeed(ctx, args[1:], stdout, stderr)
	case "jobs":
		return cmdJobs(ctx, args[1:], stdout, stderr)
	case "bench":
		return cmdBench(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageErr("unknown command %q", args[0])
}
