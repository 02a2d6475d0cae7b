// Package database opens the Postgres connection pool used by every process,
// as a *bun.DB over pgx.
package database

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Options tune the pool. Zero values take the defaults noted on each field.
type Options struct {
	// MaxOpenConns bounds the pool. Default 20.
	MaxOpenConns int
	// PingTimeout bounds the connectivity check in Open. Default 5s.
	PingTimeout time.Duration
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
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(opts.MaxOpenConns)
	sqldb.SetMaxIdleConns(opts.MaxOpenConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	db := bun.NewDB(sqldb, pgdialect.New())
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
