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
