package gym

import (
	"errors"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/tasks"
)

// The engine's and the jobs' types as the gym's callers (the web layer,
// ptctl) see them: the service is the one package they call, and these
// name the values it takes and returns.
type (
	// Engine launches and steers jobs.
	Engine = batch.Engine
	// Params are a launch's job parameters.
	Params = batch.Params
	// Param is one job parameter.
	Param = batch.Param
	// ExecutionSummary is an execution as lists show it.
	ExecutionSummary = batch.ExecutionSummary
	// ExecutionDetail is an execution with its steps, partitions and skips.
	ExecutionDetail = batch.ExecutionDetail
	// ExecutionFilter selects executions for the history.
	ExecutionFilter = batch.ExecutionFilter
	// SkipRecord is an item a step skipped, with its reason.
	SkipRecord = batch.SkipRecord
	// RunPoint is one past run of a job, for its sparkline.
	RunPoint = batch.RunPoint
	// GrantRequest is an ad-hoc or bulk grant an admin asks for.
	GrantRequest = tasks.GrantRequest
	// Grant is a recorded grant.
	Grant = tasks.Grant
	// ExportRequest is an export a user asks for.
	ExportRequest = tasks.ExportRequest
)

// Execution statuses (Spring Batch's BatchStatus).
const (
	StatusStarting  = batch.StatusStarting
	StatusStarted   = batch.StatusStarted
	StatusStopping  = batch.StatusStopping
	StatusStopped   = batch.StatusStopped
	StatusFailed    = batch.StatusFailed
	StatusCompleted = batch.StatusCompleted
	StatusAbandoned = batch.StatusAbandoned
)

// Running says whether an execution in status is still running.
func Running(status string) bool { return batch.Running(status) }

// ReportPrefix is where the statistics reports are stored.
const ReportPrefix = tasks.ReportPrefix

// IsNotFound says err names something that does not exist: an id, a job.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, batch.ErrNotFound) || errors.Is(err, batch.ErrUnknownJob)
}

// IsInvalidParams says err is a launch's parameters refused.
func IsInvalidParams(err error) bool { return errors.Is(err, batch.ErrInvalidParams) }

// IsConflict says err is a request the current state forbids: an export
// not finished, a class full, an execution that cannot make that move.
func IsConflict(err error) bool {
	for _, e := range []error{ErrConflict, batch.ErrAlreadyComplete, batch.ErrAlreadyRunning, batch.ErrAbandoned,
		batch.ErrInvalidTransition, batch.ErrNotRestartable} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
