package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"syscall"

	"github.com/minio/minio-go/v7"
)

// Error is a failed storage operation: which operation, on which key, and
// whether a retry may help. Callers that retry (the batch engine's
// RetryPolicy) read Retryable; errors.Is still finds ErrNotFound and
// ErrBadKey under it.
type Error struct {
	Op  string // put, open, stat, delete, list
	Key string
	Err error
	// Temporary is true for what a retry may cure: a dropped connection, a
	// timeout, a 5xx or throttling answer, a full disk.
	Temporary bool
}

func (e *Error) Error() string { return fmt.Sprintf("storage: %s %s: %v", e.Op, e.Key, e.Err) }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether a retry may help.
func (e *Error) Retryable() bool { return e.Temporary }

// fail wraps err from operation op on key as an *Error, deciding whether
// it is temporary. A nil err stays nil.
func fail(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err
	}
	return &Error{Op: op, Key: key, Err: err, Temporary: temporary(err)}
}

// temporary sorts a cause: a missing file, a bad key, a refused permission
// or a 4xx from S3 will fail again; the rest may not.
func temporary(err error) bool {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrBadKey), errors.Is(err, fs.ErrPermission),
		errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EROFS):
		return false
	case errors.Is(err, syscall.ENOSPC):
		return true
	}
	if r := minio.ToErrorResponse(err); r.StatusCode != 0 {
		return r.StatusCode >= 500 || r.StatusCode == http.StatusTooManyRequests || r.StatusCode == http.StatusRequestTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var pe *fs.PathError
	return errors.As(err, &pe) // other local I/O errors (EIO, an interrupted write)
}
