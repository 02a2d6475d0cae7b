// Package testenv gives each test its own real Postgres database and its own
// Redis database, so that test packages running in parallel under
// `go test ./...` never see each other's rows or tasks.
//
// It reads DATABASE_URL and REDIS_URL, which `make test` points at private
// servers it starts under .data/ (scripts/services.sh). Postgres isolation:
// the schema is migrated once into a template database named after a hash of
// the migrations, and every test gets CREATE DATABASE … TEMPLATE it (fast, a
// file copy), dropped on cleanup. Redis isolation: each test takes the next
// database index from a counter kept in database 0 and flushes it.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/internal/database"
	"github.com/passbatch/passbatch/migrations"
)

// T is what testenv needs of a test: testing.TB has it, and so can a
// runnable example's stand-in (see Example).
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
}

// Example is a T for runnable examples (which get no *testing.T): Fatal
// panics, and Close runs the cleanups.
type Example struct{ cleanups []func() }

// Helper does nothing.
func (*Example) Helper() {}

// Fatal panics with args.
func (*Example) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

// Fatalf panics with the formatted message.
func (*Example) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// Logf discards the message.
func (*Example) Logf(string, ...any) {}

// Cleanup registers fn for Close.
func (e *Example) Cleanup(fn func()) { e.cleanups = append(e.cleanups, fn) }

// Close runs the cleanups, last registered first.
func (e *Example) Close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

// templateLockKey serializes template creation across test processes.
const templateLockKey = 0x7465737465747631

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// DatabaseURL returns the admin URL tests connect through, failing the test
// with instructions when it is not configured.
func DatabaseURL(t T) string {
	t.Helper()
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		t.Fatal("testenv: DATABASE_URL is not set; run the tests with `make test`, which starts Postgres and Redis")
	}
	return u
}

// DB is an isolated, migrated database for one test.
type DB struct {
	*bun.DB
	// URL connects to this test's database; give it to child processes.
	URL string
	// Name is the database name.
	Name string
}

// NewDB creates a fresh migrated database for t and drops it when t ends.
func NewDB(t T) *DB {
	t.Helper()
	ctx := context.Background()
	admin := DatabaseURL(t)
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx, admin) })
	if templateErr != nil {
		t.Fatalf("testenv: template database: %v", templateErr)
	}
	return newDBFrom(t, admin, templateName)
}

// newDBFrom creates a database for t copied from template, dropped when t
// ends.
func newDBFrom(t T, admin, template string) *DB {
	t.Helper()
	ctx := context.Background()
	adb, err := database.Open(ctx, admin, database.Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer adb.Close()

	name := "t_" + randomHex(8)
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	u := withDatabase(admin, name)
	db, err := database.Open(ctx, u, database.Options{MaxOpenConns: 40})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		db.Close()
		adb, err := database.Open(context.Background(), admin, database.Options{MaxOpenConns: 1})
		if err != nil {
			t.Logf("testenv: drop %s: %v", name, err)
			return
		}
		defer adb.Close()
		if _, err := adb.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop %s: %v", name, err)
		}
	})
	return &DB{DB: db, URL: u, Name: name}
}

// ensureTemplate creates the migrated template database once per schema
// version; concurrent test processes wait on an advisory lock.
func ensureTemplate(ctx context.Context, admin string) (string, error) {
	name, err := templateDBName()
	if err != nil {
		return "", err
	}
	adb, err := database.Open(ctx, admin, database.Options{MaxOpenConns: 1})
	if err != nil {
		return "", err
	}
	defer adb.Close()
	conn, err := adb.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", int64(templateLockKey)); err != nil {
		return "", fmt.Errorf("advisory lock: %w", err)
	}
	defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(?)", int64(templateLockKey)) //nolint:errcheck // released with the session

	var exists bool
	if err := conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ? AND datistemplate)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	tdb, err := database.Open(ctx, withDatabase(admin, name), database.Options{MaxOpenConns: 2})
	if err != nil {
		return "", err
	}
	if _, err := migrations.Up(ctx, tdb); err != nil {
		tdb.Close()
		return "", err
	}
	tdb.Close()
	if _, err := conn.ExecContext(ctx, "ALTER DATABASE "+name+" WITH is_template = true"); err != nil {
		return "", err
	}
	return name, nil
}

// templateDBName names the template after the migrations' content, so a
// schema change makes a new template instead of reusing a stale one.
func templateDBName() (string, error) {
	h := sha256.New()
	ms, err := migrations.Files()
	if err != nil {
		return "", err
	}
	err = fs.WalkDir(ms, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(ms, p)
		if err != nil {
			return err
		}
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return "passbatch_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Redis is an isolated Redis database for one test.
type Redis struct {
	// Client talks to this test's database.
	Client *redis.Client
	// URL names this test's database (redis://host:port/N); give it to
	// asynq (asynq.ParseRedisURI) and to child processes.
	URL string
	// DB is the database index.
	DB int
}

// NewRedis takes an unused Redis database index for t, flushed before and after.
func NewRedis(t T) *Redis {
	t.Helper()
	ctx := context.Background()
	raw := os.Getenv("REDIS_URL")
	if raw == "" {
		t.Fatal("testenv: REDIS_URL is not set; run the tests with `make test`, which starts Postgres and Redis")
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatalf("testenv: REDIS_URL: %v", err)
	}
	ctl := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, Username: opt.Username, DB: 0})
	defer ctl.Close()
	n := 16
	if v, err := ctl.ConfigGet(ctx, "databases").Result(); err == nil {
		if d, err := strconv.Atoi(v["databases"]); err == nil && d > 1 {
			n = d
		}
	}
	seq, err := ctl.Incr(ctx, "passbatch:testenv:next-db").Result()
	if err != nil {
		t.Fatalf("testenv: redis at %s: %v", opt.Addr, err)
	}
	idx := 1 + int(seq%int64(n-1))
	o := *opt
	o.DB = idx
	c := redis.NewClient(&o)
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("testenv: flush redis db %d: %v", idx, err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.FlushDB(cctx).Err()
		c.Close()
	})
	u, _ := url.Parse(raw)
	u.Path = "/" + strconv.Itoa(idx)
	return &Redis{Client: c, URL: strings.TrimSuffix(u.String(), "?"), DB: idx}
}

var (
	filledMu        sync.Mutex
	filledTemplates = map[string]string{} // key -> template name, this process's
)

// NewFilledDB is NewDB whose database starts as a copy of one that fill
// loaded once in this test process (under key): a seed that costs seconds,
// such as the demo gym, is paid once, not by every test. DropFilled, in the
// package's TestMain, removes those templates when the tests end.
func NewFilledDB(t T, key string, fill func(ctx context.Context, db *bun.DB) error) *DB {
	t.Helper()
	ctx := context.Background()
	admin := DatabaseURL(t)
	filledMu.Lock()
	name, ok := filledTemplates[key]
	if !ok {
		src := NewDB(t) // migrated; dropped when t ends, once copied
		if err := fill(ctx, src.DB); err != nil {
			filledMu.Unlock()
			t.Fatalf("testenv: fill %s: %v", key, err)
		}
		src.DB.Close()
		name = "tf_" + randomHex(8)
		if err := copyDatabase(ctx, admin, src.Name, name); err != nil {
			filledMu.Unlock()
			t.Fatalf("testenv: template %s: %v", key, err)
		}
		filledTemplates[key] = name
	}
	filledMu.Unlock()
	return newDBFrom(t, admin, name)
}

// DropFilled drops the templates NewFilledDB made in this process.
func DropFilled() {
	filledMu.Lock()
	defer filledMu.Unlock()
	admin := os.Getenv("DATABASE_URL")
	if admin == "" || len(filledTemplates) == 0 {
		return
	}
	adb, err := database.Open(context.Background(), admin, database.Options{MaxOpenConns: 1})
	if err != nil {
		return
	}
	defer adb.Close()
	for k, name := range filledTemplates {
		_, _ = adb.ExecContext(context.Background(), "ALTER DATABASE "+name+" WITH is_template = false")
		_, _ = adb.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		delete(filledTemplates, k)
	}
}

// copyDatabase makes database to as a template copy of from.
func copyDatabase(ctx context.Context, admin, from, to string) error {
	adb, err := database.Open(ctx, admin, database.Options{MaxOpenConns: 1})
	if err != nil {
		return err
	}
	defer adb.Close()
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+to+" TEMPLATE "+from); err != nil {
		return err
	}
	_, err = adb.ExecContext(ctx, "ALTER DATABASE "+to+" WITH is_template = true")
	return err
}
