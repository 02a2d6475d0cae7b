package batch

// Status is a job or step execution status (Spring Batch's BatchStatus).
type Status = string

// Execution statuses.
const (
	StatusStarting  Status = "STARTING"
	StatusStarted   Status = "STARTED"
	StatusStopping  Status = "STOPPING"
	StatusStopped   Status = "STOPPED"
	StatusFailed    Status = "FAILED"
	StatusCompleted Status = "COMPLETED"
	StatusAbandoned Status = "ABANDONED"
)

// Running reports whether s is a status of an execution still in progress.
func Running(s Status) bool {
	return s == StatusStarting || s == StatusStarted || s == StatusStopping
}

// Exit codes (Spring Batch's ExitStatus).
const (
	ExitUnknown   = "UNKNOWN"
	ExitExecuting = "EXECUTING"
	ExitCompleted = "COMPLETED"
	ExitFailed    = "FAILED"
	ExitStopped   = "STOPPED"
	ExitNoop      = "NOOP"
	// ExitCompletedWithSkips is the conventional exit status of a step that
	// completed but skipped items (see CompletedWithSkips).
	ExitCompletedWithSkips = "COMPLETED WITH SKIPS"
)

func exitCodeFor(s Status) string {
	switch s {
	case StatusCompleted:
		return ExitCompleted
	case StatusFailed:
		return ExitFailed
	case StatusStopped:
		return ExitStopped
	case StatusAbandoned:
		return ExitFailed
	}
	return ExitExecuting
}
