// Package database opens the Postgres connection pool used by every process,
// as a *bun.DB over pgx.
package database

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/extra/bunotel"
)

// Options tune the pool. Zero values take the defaults noted on each field.
type Options struct {
	// MaxOpenConns bounds the pool. Default 20.
	MaxOpenConns int
	// PingTimeout bounds the connectivity check in Open. Default 5s.
	PingTimeout time.Duration
	// Session bounds every connection's transactions and statements.
	Session SessionLimits
	// ApplicationName names the connections in pg_stat_activity (unless
	// the URL sets application_name).
	ApplicationName string
}

// SessionLimits are Postgres session settings that keep one stuck process
// from stalling the others: a frozen worker's open transaction is ended,
// and its row locks released, after IdleInTransaction. Zero leaves the
// server's setting (off by default).
type SessionLimits struct {
	// IdleInTransaction ends a session idle inside a transaction this long
	// (idle_in_transaction_session_timeout).
	IdleInTransaction time.Duration
	// Lock bounds a wait for a lock (lock_timeout).
	Lock time.Duration
	// Statement bounds one statement (statement_timeout).
	Statement time.Duration
}

// params sets the limits as connection run-time parameters.
func (l SessionLimits) params(p map[string]string) {
	set := func(name string, d time.Duration) {
		if d > 0 {
			p[name] = strconv.FormatInt(d.Milliseconds(), 10)
		}
	}
	set("idle_in_transaction_session_timeout", l.IdleInTransaction)
	set("lock_timeout", l.Lock)
	set("statement_timeout", l.Statement)
}

// Open parses url, opens a pool and checks that the server answers.
func Open(ctx context.Context, url string, opts Options) (*bun.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns = 20
	}
	if opts.PingTimeout == 0 {
		opts.PingTimeout = 5 * time.Second
	}
	opts.Session.params(cfg.RuntimeParams)
	// bun writes every argument into the SQL text, so no two statements
	// share a text and pgx's default (prepare each new text, cache 512 a
	// connection) cost a second round trip, a Parse and an eviction per
	// statement. The simple protocol is one round trip and nothing kept.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	// pgx reads timestamps in text (the simple protocol) and exports read
	// them from COPY: both as DateStyle ISO, whatever the server's default.
	if !slices.ContainsFunc(slices.Collect(maps.Keys(cfg.RuntimeParams)), func(k string) bool { return strings.EqualFold(k, "datestyle") }) {
		cfg.RuntimeParams["datestyle"] = "ISO, MDY"
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok && opts.ApplicationName != "" {
		cfg.RuntimeParams["application_name"] = opts.ApplicationName
	}
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(opts.MaxOpenConns)
	sqldb.SetMaxIdleConns(opts.MaxOpenConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	db := bun.NewDB(sqldb, pgdialect.New())
	// A span per statement under the caller's (no-op until tracing is set up).
	db.AddQueryHook(bunotel.NewQueryHook(bunotel.WithDBName(cfg.Database)))
	pctx, cancel := context.WithTimeout(ctx, opts.PingTimeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres at %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	return db, nil
}

// Raw returns the *sql.DB under db, for code that needs pgx directly (COPY).
func Raw(db *bun.DB) *sql.DB { return db.DB }

// QueryPrepared runs query, a fixed text with $1… parameters, as a
// statement prepared once per connection (pgx's statement cache), and
// scans its rows into dest as bun does. It is for the hot paths: a short
// query's planning costs several times its execution (the members'
// passes statement: 39k/s prepared against 8k/s planned each time, by
// pgbench on 2 cores), and bun, which writes arguments into the text,
// plans every statement anew. It bypasses bun's query hooks (no span).
func QueryPrepared(ctx context.Context, db *bun.DB, dest any, query string, args ...any) error {
	rows, err := db.DB.QueryContext(ctx, query, append([]any{pgx.QueryExecModeCacheStatement}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return db.ScanRows(ctx, rows, dest)
}
