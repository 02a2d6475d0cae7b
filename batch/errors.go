package batch

import (
	"errors"
	"fmt"
)

var (
	// ErrUnknownJob is returned for a job name that is not registered.
	ErrUnknownJob = errors.New("unknown job")
	// ErrUnknownStep is returned for a step name its job does not declare
	// (a task from a newer or older version of the job).
	ErrUnknownStep = errors.New("unknown step")
	// ErrAlreadyComplete is returned when launching an instance that has a
	// COMPLETED execution.
	ErrAlreadyComplete = errors.New("job instance already complete")
	// ErrAbandoned is returned when launching or restarting an instance whose
	// last execution was abandoned.
	ErrAbandoned = errors.New("job instance abandoned")
	// ErrNotFound is returned for an unknown execution id.
	ErrNotFound = errors.New("not found")
	// ErrInvalidTransition is returned when stop, restart or abandon is asked
	// of an execution in a status that forbids it.
	ErrInvalidTransition = errors.New("invalid status transition")
	// ErrFiltered is returned by a Processor to drop an item; it is counted in
	// filter_count and not written.
	ErrFiltered = errors.New("item filtered")
	// ErrNotRestartable is returned when restarting (or launching again)
	// an instance of a job that prevents restarts.
	ErrNotRestartable = errors.New("job is not restartable")
	// ErrInvalidParams wraps a job's parameter validation failure.
	ErrInvalidParams = errors.New("invalid job parameters")
	// errFenced means another delivery owns the step execution now.
	errFenced = errors.New("step execution version moved: another delivery owns it")
)

// AlreadyRunningError is returned when an instance already has a running
// execution; errors.Is(err, ErrAlreadyRunning) holds.
type AlreadyRunningError struct {
	JobName        string
	JobExecutionID int64
}

// ErrAlreadyRunning matches an *AlreadyRunningError with errors.Is.
var ErrAlreadyRunning = errors.New("job instance already running")

func (e *AlreadyRunningError) Error() string {
	return fmt.Sprintf("job %s is already running as execution %d", e.JobName, e.JobExecutionID)
}

// Is reports whether target is ErrAlreadyRunning.
func (e *AlreadyRunningError) Is(target error) bool { return target == ErrAlreadyRunning }

// SkippableError marks an error as skippable by a step's default SkipPolicy.
type SkippableError struct{ Err error }

func (e *SkippableError) Error() string { return e.Err.Error() }
func (e *SkippableError) Unwrap() error { return e.Err }

// Skippable wraps err so that the default SkipPolicy skips the item.
func Skippable(err error) error { return &SkippableError{Err: err} }

// RetryableError marks an error as transient for a step's default RetryPolicy.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable reports true: a retry may help.
func (e *RetryableError) Retryable() bool { return true }

// Retryable wraps err so that the default RetryPolicy retries it.
func Retryable(err error) error { return &RetryableError{Err: err} }
