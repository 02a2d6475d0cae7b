package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/passbatch/passbatch/batch"
)

// TestProgressLine: the --watch line shows the bar, the counts, and the
// running step's pace and ETA.
func TestProgressLine(t *testing.T) {
	ips, eta := 1234.4, 75.0
	d := &batch.ExecutionDetail{ExecutionSummary: batch.ExecutionSummary{JobExecutionID: 7, Status: batch.StatusStarted, ReadCount: 500, WriteCount: 490, SkipCount: 2},
		Progress: 0.5, Steps: []batch.StepDetail{
			{StepExecution: batch.StepExecution{StepName: "count", Status: batch.StatusCompleted}},
			{StepExecution: batch.StepExecution{StepName: "deduct", Status: batch.StatusStarted}, ItemsPerSecond: &ips, ETASeconds: &eta},
		}}
	got := progressLine(d)
	want := "execution 7 STARTED [############............]  50% read 500 write 490 skip 2 · deduct 1234 items/s ETA 1m15s"
	if got != want {
		t.Fatalf("progressLine:\n got %q\nwant %q", got, want)
	}
}

// TestFlagsAfterArguments: `jobs status 7 --watch` reads the flag.
func TestFlagsAfterArguments(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	watch := fs.Bool("watch", false, "")
	if err := parseFlags(fs, []string{"7", "--watch"}); err != nil || !*watch || strings.Join(fs.Args(), " ") != "7" {
		t.Fatalf("parse: %v, watch %v, args %v", err, *watch, fs.Args())
	}
}

// TestPrintExecutionShowsExitsAndTransitions: jobs status prints each
// step's exit status and the transitions the flow took.
func TestPrintExecutionShowsExitsAndTransitions(t *testing.T) {
	d := &batch.ExecutionDetail{ExecutionSummary: batch.ExecutionSummary{JobExecutionID: 9, JobName: "export", Status: batch.StatusFailed, ExitCode: batch.ExitFailed},
		Transitions: []string{"merge -[FAILED]-> cleanup", "cleanup -[PARTS KEPT]-> fail"},
		Steps: []batch.StepDetail{
			{StepExecution: batch.StepExecution{StepName: "merge", Status: batch.StatusFailed, ExitCode: batch.ExitFailed}},
			{StepExecution: batch.StepExecution{StepName: "cleanup", Status: batch.StatusCompleted, ExitCode: "PARTS KEPT"}},
		}}
	var b strings.Builder
	if err := printExecution(&b, d); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"transitions: merge -[FAILED]-> cleanup; cleanup -[PARTS KEPT]-> fail", "EXIT", "cleanup  COMPLETED  PARTS KEPT"} {
		if !strings.Contains(out, want) {
			t.Fatalf("jobs status output lacks %q:\n%s", want, out)
		}
	}
}
