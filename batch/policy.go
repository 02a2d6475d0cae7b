package batch

import (
	"errors"
	"time"
)

// SkipPolicy decides which failed items a chunk step skips instead of failing.
// Skipped items are recorded in batch_skipped_item with phase and reason.
type SkipPolicy struct {
	// Skippable reports whether err may be skipped. Default: errors wrapped
	// with Skippable.
	Skippable func(err error) bool
	// Limit is the most items one step execution (one partition) may skip;
	// one more fails the step. Default 0: nothing is skipped.
	Limit int
}

func (p SkipPolicy) canSkip(err error, skipped int64) bool {
	if p.Limit <= 0 || skipped >= int64(p.Limit) {
		return false
	}
	if p.Skippable != nil {
		return p.Skippable(err)
	}
	var se *SkippableError
	return errors.As(err, &se)
}

// RetryPolicy decides which errors a chunk is retried for, in process,
// before the item is skipped or the step fails. Retries wait outside any
// transaction: a failed write rolls its chunk transaction back first.
type RetryPolicy struct {
	// Retryable reports whether err is transient. Default: errors wrapped
	// with Retryable, and errors whose origin says a retry may help (a
	// Retryable() bool method returning true, as storage and notify errors
	// have).
	Retryable func(err error) bool
	// Limit is the most attempts after the first. Default 0: no retry.
	Limit int
	// Backoff is the wait before attempt n (1-based). Default: 100ms·2^(n-1),
	// at most 5s.
	Backoff func(attempt int) time.Duration
}

func (p RetryPolicy) retryable(err error) bool {
	if p.Retryable != nil {
		return p.Retryable(err)
	}
	return retryableByOrigin(err)
}

func (p RetryPolicy) backoff(attempt int) time.Duration {
	if p.Backoff != nil {
		return p.Backoff(attempt)
	}
	d := 100 * time.Millisecond << (attempt - 1)
	if d > 5*time.Second || d <= 0 {
		d = 5 * time.Second
	}
	return d
}
