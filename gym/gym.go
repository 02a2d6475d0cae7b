// Package gym is the PT gym's service layer: the operations a person
// triggers — grant passes, create packages, run the timetable and book
// classes, request and download exports, launch and steer job executions,
// read statistics and passes — each owning its transaction and its
// enqueue. The JSON API, the pages and ptctl only translate to and from it,
// so a page and its JSON twin cannot drift apart; the web layer imports
// nothing below it (engine.go names the engine's types and error classes
// it passes up). It calls down into the jobs (tasks) and the engine;
// neither imports it.
package gym

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
)

// Service runs the gym's operations. Build it with every field set but
// Now and Logger, which default to time.Now and slog.Default().
type Service struct {
	DB     *bun.DB
	Client *asynq.Client // enqueues grant tasks
	Engine *batch.Engine
	Store  storage.Store
	Logger *slog.Logger
	Now    func() time.Time
	// LiveFor is how recent a worker's heartbeat must be for Recover to
	// count it alive (FAILOVER_AFTER). Default 5s.
	LiveFor time.Duration
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// FieldError is a request refused for one of its fields; the jobs' own
// requests (grants, exports) are validated by the same type in tasks.
type FieldError = tasks.FieldError

// ErrNotFound is returned for an id that names nothing.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned for a request the current state forbids (a
// download of an export that is not finished).
var ErrConflict = errors.New("conflict")

// notFound says what was not found.
func notFound(what string) error { return fmt.Errorf("%s %w", what, ErrNotFound) }

// Page is a keyset page request: Limit rows after (or, for newest-first
// lists, before) the id After. Limit 0 takes the default 50.
type Page struct {
	After int64
	Limit int
}

func (p Page) limit() int {
	if p.Limit <= 0 {
		return 50
	}
	return p.Limit
}
