package batch

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// Errors are classified where they arise. A package that calls out (storage,
// notify) returns errors with a Retryable() bool method: true for what a
// retry may cure (a timeout, a 5xx), false for what it cannot (a 4xx, a
// missing file). The engine then applies one order to every error of a
// reader, processor, Emit, writer or tasklet (see the package doc):
//
//  1. the step's RetryPolicy: retried in place, outside any transaction,
//     with backoff, up to its limit;
//  2. the step's SkipPolicy: the item is skipped and recorded;
//  3. infrastructure (isInfra): the task goes back to asynq and resumes
//     from the last committed chunk;
//  4. anything else fails the step (restartable).

// classifiedError is an error whose origin said whether a retry may help.
type classifiedError interface {
	error
	Retryable() bool
}

// retryableByOrigin reports whether err carries its origin's verdict that a
// retry may help.
func retryableByOrigin(err error) bool {
	var c classifiedError
	return errors.As(err, &c) && c.Retryable()
}

// isInfra reports whether err is an infrastructure fault of our own
// process, Postgres or Redis (connection lost, server shutting down or
// restarting, a lock or statement timeout, a deadlock, this process
// shutting down) rather than a property of the data or of an outside
// service: those are retried as asynq tasks, never skipped. An error its
// origin classified (storage, notify) is not infrastructure, even when a
// network error lies under it: the step's policies decide it.
func isInfra(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return true // shutting down, or the task's deadline passed
	}
	var c classifiedError
	if errors.As(err, &c) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return infraSQLState(pe.Code)
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || pgconn.Timeout(err) || errors.As(err, &ne)
}

// infraSQLState reports whether a Postgres error code is a fault of the
// server or the session rather than of the statement's data.
func infraSQLState(code string) bool {
	switch {
	case len(code) < 2:
		return false
	case code[:2] == "08", // connection exception
		code[:2] == "53",  // insufficient resources (too many connections, disk full)
		code[:3] == "57P", // operator intervention: shutdown, restart, terminated backend
		code == "57014",   // query_canceled: statement_timeout
		code == "55P03",   // lock_not_available: lock_timeout
		code == "25P03",   // idle_in_transaction_session_timeout
		code == "40001",   // serialization failure
		code == "40P01":   // deadlock
		return true
	}
	return false
}
