package batch

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// isInfra reports whether err is an infrastructure fault (connection lost,
// shutdown, deadline) rather than a property of the data: those are retried
// as asynq tasks and resume from the last committed chunk, never skipped.
func isInfra(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P: operator intervention (shutdown);
		// 40001/40P01: serialization failure and deadlock, worth a task retry.
		c := pe.Code
		return len(c) >= 2 && (c[:2] == "08" || c[:3] == "57P" || c == "40001" || c == "40P01")
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
