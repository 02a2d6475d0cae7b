package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/passbatch/passbatch/gym"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/config"
	"github.com/passbatch/passbatch/process"
)

func openService(ctx context.Context) (*process.System, error) {
	cfg, err := config.FromEnv(config.Need{Redis: true})
	if err != nil {
		return nil, err
	}
	// The CLI's own output says what happened; engine logs only warnings
	// unless LOG_LEVEL asks for more.
	if os.Getenv("LOG_LEVEL") == "" {
		cfg.LogLevel = slog.LevelWarn
	}
	return process.Open(ctx, cfg, cfg.Logger(), "passbatch-ptctl")
}

// jobsErr maps the engine's refusals to exit statuses.
func jobsErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, batch.ErrUnknownJob), errors.Is(err, batch.ErrInvalidParams), errors.Is(err, batch.ErrNotFound):
		return &exitError{2, err}
	case errors.Is(err, batch.ErrAlreadyComplete), errors.Is(err, batch.ErrAlreadyRunning),
		errors.Is(err, batch.ErrAbandoned), errors.Is(err, batch.ErrInvalidTransition), errors.Is(err, batch.ErrNotRestartable):
		return &exitError{3, err}
	}
	return err
}

func cmdJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageErr("usage: ptctl jobs list|launch|status|restart|stop|abandon|recover|purge")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list":
		return jobsList(ctx, args, stdout, stderr)
	case "launch":
		return jobsLaunch(ctx, args, stdout, stderr)
	case "status":
		return jobsStatus(ctx, args, stdout, stderr)
	case "restart", "stop", "abandon", "recover":
		return jobsControl(ctx, sub, args, stdout, stderr)
	case "purge":
		return jobsPurge(ctx, args, stdout, stderr)
	}
	return usageErr("unknown jobs command %q (want list, launch, status, restart, stop, abandon, recover or purge)", sub)
}

func jobsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("jobs list", stderr)
	name := fs.String("name", "", "only executions of this job")
	status := fs.String("status", "", "only executions in this status")
	limit := fs.Int("limit", 30, "how many executions, newest first")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *limit < 1 || *limit > 500 {
		return usageErr("--limit must be 1 to 500")
	}
	svc, err := openService(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	if *name != "" {
		if _, err := svc.Registry.Job(*name); err != nil {
			return jobsErr(err)
		}
	}
	list, err := svc.Engine.ListExecutions(ctx, batch.ExecutionFilter{JobName: *name, Status: strings.ToUpper(*status), Limit: *limit})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tJOB\tSTATUS\tREAD\tWRITE\tFILTER\tSKIP\tSTARTED\tDURATION")
	for _, e := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", e.JobExecutionID, e.JobName, e.Status,
			e.ReadCount, e.WriteCount, e.FilterCount, e.SkipCount, fmtTime(e.StartTime), fmtDur(e.StartTime, e.EndTime))
	}
	return tw.Flush()
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func fmtDur(a, b *time.Time) string {
	if a == nil {
		return "-"
	}
	end := time.Now()
	if b != nil {
		end = *b
	}
	return end.Sub(*a).Round(time.Millisecond).String()
}

// launchUsage is jobs launch's usage line.
const launchUsage = "usage: ptctl jobs launch NAME [key=value ...] [-key=value ...] [--next] [--wait] [--json]"

// launchFlags are jobs launch's flags, which may follow the job name and
// parameters.
type launchFlags struct {
	wait, asJSON, next, help bool
	rest                     []string // the job name, then its parameters
}

func parseLaunchFlags(args []string) (launchFlags, error) {
	var f launchFlags
	for _, a := range args {
		switch a {
		case "--wait", "-wait":
			f.wait = true
		case "--next", "-next":
			f.next = true
		case "--json", "-json":
			f.asJSON = true
		case "-h", "--help":
			f.help = true
		default:
			if strings.HasPrefix(a, "--") {
				return f, usageErr("jobs launch: unknown flag %s", a)
			}
			f.rest = append(f.rest, a)
		}
	}
	if len(f.rest) == 0 && !f.help {
		return f, usageErr(launchUsage)
	}
	return f, nil
}

func jobsLaunch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseLaunchFlags(args)
	if err != nil {
		return err
	}
	if f.help {
		fmt.Fprintln(stdout, launchUsage+"\n  --next  a new instance with run.id one more than the job's last (Spring's RunIdIncrementer)")
		return nil
	}
	wait, asJSON, next, rest := f.wait, f.asJSON, f.next, f.rest
	params, err := batch.ParseParams(rest[1:])
	if err != nil {
		return &exitError{2, err}
	}
	svc, err := openService(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	je, err := operations(svc).Launch(ctx, rest[0], params, next)
	if err != nil {
		return jobsErr(err)
	}
	if !wait {
		if asJSON {
			return json.NewEncoder(stdout).Encode(map[string]any{"job_execution_id": je.JobExecutionID, "status": je.Status})
		}
		fmt.Fprintln(stdout, je.JobExecutionID)
		return nil
	}
	d, err := follow(ctx, svc.Engine, je.JobExecutionID, stderr, isTerminal(stderr))
	if err != nil {
		return err
	}
	if asJSON {
		if err := json.NewEncoder(stdout).Encode(d); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stdout, je.JobExecutionID)
	}
	if d.Status != batch.StatusCompleted {
		return fmt.Errorf("execution %d ended %s: %s", d.JobExecutionID, d.Status, d.ExitMessage)
	}
	return nil
}

// follow prints progress on w until the execution ends: one line each
// time it changes, or, on a terminal (tty), one line redrawn in place.
func follow(ctx context.Context, eng *batch.Engine, id int64, w io.Writer, tty bool) (*batch.ExecutionDetail, error) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	last := ""
	for {
		d, err := eng.Execution(ctx, id)
		if err != nil {
			return nil, err
		}
		line := progressLine(d)
		switch {
		case tty:
			fmt.Fprintf(w, "\r\033[K%s", line)
		case line != last:
			fmt.Fprintln(w, line)
		}
		last = line
		if !batch.Running(d.Status) {
			if tty {
				fmt.Fprintln(w)
			}
			return d, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// progressLine is one line of an execution's progress: a bar, the items
// read, the pace and the ETA of the step running now.
func progressLine(d *batch.ExecutionDetail) string {
	const width = 24
	n := int(d.Progress * width)
	bar := strings.Repeat("#", n) + strings.Repeat(".", width-n)
	line := fmt.Sprintf("execution %d %s [%s] %3.0f%% read %d write %d skip %d", d.JobExecutionID, d.Status, bar, d.Progress*100,
		d.ReadCount, d.WriteCount, d.SkipCount)
	for _, s := range d.Steps {
		if !batch.Running(s.Status) {
			continue
		}
		line += " · " + s.StepName
		if s.ItemsPerSecond != nil {
			line += fmt.Sprintf(" %.0f items/s", *s.ItemsPerSecond)
		}
		if s.ETASeconds != nil {
			line += " ETA " + (time.Duration(*s.ETASeconds) * time.Second).Round(time.Second).String()
		}
	}
	return line
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func parseID(args []string, what string) (int64, error) {
	if len(args) != 1 {
		return 0, usageErr("usage: ptctl jobs %s ID", what)
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErr("jobs %s: %q is not an execution id", what, args[0])
	}
	return id, nil
}

func jobsStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("jobs status", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	watch := fs.Bool("watch", false, "follow a running execution (a progress bar with items/s and ETA) until it ends, then print it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	id, err := parseID(fs.Args(), "status")
	if err != nil {
		return err
	}
	svc, err := openService(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	d, err := svc.Engine.Execution(ctx, id)
	if err != nil {
		return jobsErr(err)
	}
	if *watch {
		if d, err = follow(ctx, svc.Engine, id, stderr, isTerminal(stderr)); err != nil {
			return jobsErr(err)
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(d)
	}
	return printExecution(stdout, d)
}

// printExecution writes an execution as `jobs status` shows it.
func printExecution(stdout io.Writer, d *batch.ExecutionDetail) error {
	fmt.Fprintf(stdout, "execution %d of %s (instance %d): %s %s\n", d.JobExecutionID, d.JobName, d.JobInstanceID, d.Status, d.ExitCode)
	if d.ExitMessage != "" {
		fmt.Fprintf(stdout, "  message: %s\n", d.ExitMessage)
	}
	fmt.Fprintf(stdout, "  started %s, took %s, progress %.0f%%\n", fmtTime(d.StartTime), fmtDur(d.StartTime, d.EndTime), d.Progress*100)
	var ps []string
	for k, v := range d.Params {
		id := ""
		if !v.Identifying {
			id = " (non-identifying)"
		}
		ps = append(ps, fmt.Sprintf("%s=%s%s", k, v.Value, id))
	}
	fmt.Fprintf(stdout, "  params: %s\n", strings.Join(ps, ", "))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if len(d.Transitions) > 0 {
		fmt.Fprintf(stdout, "  transitions: %s\n", strings.Join(d.Transitions, "; "))
	}
	fmt.Fprintln(tw, "  STEP\tSTATUS\tEXIT\tREAD\tWRITE\tFILTER\tSKIP\tCOMMITS\tROLLBACKS\tPARTITIONS")
	for _, s := range d.Steps {
		parts := "-"
		if s.PartitionsTotal != nil {
			var b strings.Builder
			for st, n := range s.PartitionsByStatus {
				fmt.Fprintf(&b, "%s:%d ", st, n)
			}
			parts = fmt.Sprintf("%d (%s)", *s.PartitionsTotal, strings.TrimSpace(b.String()))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.StepName, s.Status, s.ExitCode, s.LiveRead, s.LiveWrite, s.FilterCount,
			s.LiveSkip, s.CommitCount, s.RollbackCount, parts)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, sk := range d.Skipped {
		fmt.Fprintf(stdout, "  skipped %s in %s: %s\n", sk.ItemKey, sk.Phase, sk.Error)
	}
	return nil
}

func jobsControl(ctx context.Context, what string, args []string, stdout, stderr io.Writer) error {
	id, err := parseID(args, what)
	if err != nil {
		return err
	}
	svc, err := openService(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	// The same operations as the admin pages and the API.
	now, err := operations(svc).Control(ctx, id, what)
	if err != nil {
		return jobsErr(err)
	}
	switch what {
	case gym.ActionRestart:
		fmt.Fprintln(stdout, now)
	case gym.ActionStop:
		fmt.Fprintf(stdout, "execution %d is stopping\n", id)
	case gym.ActionAbandon:
		fmt.Fprintf(stdout, "execution %d abandoned\n", id)
	case gym.ActionRecover:
		fmt.Fprintf(stdout, "execution %d recovered: FAILED; restart or abandon it\n", id)
	}
	return nil
}

// operations is the gym service over svc: the operations the pages and
// the API run, for ptctl to run the same.
func operations(svc *process.System) *gym.Service {
	return &gym.Service{DB: svc.DB, Client: svc.Client, Engine: svc.Engine, Store: svc.Store, Logger: svc.Logger,
		LiveFor: svc.Config.Fleet.FailoverAfter}
}
