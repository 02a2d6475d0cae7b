package seed

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"golang.org/x/crypto/bcrypt"
)

// BulkOptions size a synthetic data set.
type BulkOptions struct {
	// Users to create; each gets PassesPerUser passes (default 1).
	Users, PassesPerUser int
	// Bookings spread over all the new passes.
	Bookings int
	// Now anchors every time in the data set.
	Now time.Time
	// Progress, when set, is told about each stage.
	Progress func(stage string, done, total int)
}

// BulkResult says what Bulk loaded and how long each stage took.
type BulkResult struct {
	Users, Passes, Bookings int
	UsersTook               time.Duration
	PassesTook              time.Duration
	BookingsTook            time.Duration
}

// Bulk loads a large data set with COPY, one transaction per table. The
// data is deterministic (fixed random seed) so benchmark runs compare:
//   - users bulk-<id>@passbatch.local, one shared password hash;
//   - passes: ~80% PROGRESSED with 5..30 uses left and an end in the future,
//     ~5% PROGRESSED already ended (expire-passes' work), ~5% READY started in
//     the last hour (expire-passes' second step), ~10% unlimited;
//   - bookings: 80% COMPLETED, ended before Now and not yet deducted
//     (use-passes' work), 10% CANCELLED, 10% READY in the coming week. A
//     limited pass always has more uses left than its undeducted bookings.
func Bulk(ctx context.Context, db *bun.DB, o BulkOptions) (*BulkResult, error) {
	if o.PassesPerUser < 1 {
		o.PassesPerUser = 1
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	o.Now = o.Now.Truncate(time.Second)
	if o.Progress == nil {
		o.Progress = func(string, int, int) {}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("bulk seed: connect: %w", err)
	}
	defer conn.Close()
	l := &bulkLoad{o: o, conn: conn, nPasses: o.Users * o.PassesPerUser, rng: rand.New(rand.NewPCG(1, 2))}
	if l.pkg, err = ensurePackages(ctx, db); err != nil {
		return nil, err
	}
	for _, stage := range []func(context.Context) error{l.users, l.passes, l.bookings} {
		if err := stage(ctx); err != nil {
			return nil, err
		}
	}
	if _, err := db.ExecContext(ctx, "ANALYZE users, pass, booking"); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	return &l.res, nil
}

// bulkLoad is one Bulk run: its stages in order (users, passes, bookings)
// share the ids made and the random source, so the data is the same each
// time.
type bulkLoad struct {
	o                    BulkOptions
	conn                 bun.Conn
	pkg                  packageIDs
	rng                  *rand.Rand
	nPasses              int
	firstUser, firstPass int64
	infos                []passInfo
	res                  BulkResult
}

// passInfo is what the bookings stage must know of a pass.
type passInfo struct {
	limited bool
	ready   bool
}

func (l *bulkLoad) users(ctx context.Context) error {
	hash, err := bcrypt.GenerateFromPassword([]byte("bulk-user-password"), 10)
	if err != nil {
		return err
	}
	start := time.Now()
	l.firstUser, err = copyRows(ctx, l.conn, "users", []string{"id", "name", "email", "phone", "password_hash", "role", "status"}, l.o.Users,
		func(i int, id int64) []any {
			return []any{id, fmt.Sprintf("회원 %d", id), fmt.Sprintf("bulk-%d@passbatch.local", id), "010-0000-0000", string(hash), "user", "ACTIVE"}
		})
	l.res.Users, l.res.UsersTook = l.o.Users, time.Since(start)
	l.o.Progress("users", l.o.Users, l.o.Users)
	return err
}

// perPass is how many bookings pass j gets: booking b goes to pass
// b % nPasses.
func (l *bulkLoad) perPass(j int) int {
	if l.nPasses == 0 {
		return 0
	}
	n := l.o.Bookings / l.nPasses
	if j < l.o.Bookings%l.nPasses {
		n++
	}
	return n
}

// passes: pass i belongs to user firstUser + i/PassesPerUser.
func (l *bulkLoad) passes(ctx context.Context) error {
	o, rng, day := l.o, l.rng, 24*time.Hour
	l.infos = make([]passInfo, l.nPasses)
	start := time.Now()
	var err error
	l.firstPass, err = copyRows(ctx, l.conn, "pass", []string{"id", "package_id", "user_id", "status", "remaining_count", "started_at", "ended_at"}, l.nPasses,
		func(i int, id int64) []any {
			user := l.firstUser + int64(i/o.PassesPerUser)
			r := rng.IntN(100)
			left := max(5+rng.IntN(26), l.perPass(i)+1)
			switch {
			case r < 10: // unlimited
				return []any{id, l.pkg.unlimited, user, "PROGRESSED", nil, o.Now.Add(-30 * day), nil}
			case r < 15: // ended: expire-passes expires it
				l.infos[i].limited = true
				return []any{id, l.pkg.pt10, user, "PROGRESSED", left, o.Now.Add(-60 * day), o.Now.Add(-time.Duration(1+rng.IntN(600)) * time.Minute)}
			case r < 20: // starts within the last hour
				l.infos[i] = passInfo{limited: true, ready: true}
				s := o.Now.Add(-time.Duration(rng.IntN(60)) * time.Minute)
				return []any{id, l.pkg.pt30, user, "READY", left, s, s.Add(180 * day)}
			default:
				l.infos[i].limited = true
				return []any{id, l.pkg.pt10, user, "PROGRESSED", left, o.Now.Add(-20 * day), o.Now.Add(time.Duration(10+rng.IntN(60)) * day)}
			}
		})
	l.res.Passes, l.res.PassesTook = l.nPasses, time.Since(start)
	o.Progress("passes", l.nPasses, l.nPasses)
	return err
}

func (l *bulkLoad) bookings(ctx context.Context) error {
	start := time.Now()
	hour := l.o.Now.Truncate(time.Hour)
	_, err := copyRows(ctx, l.conn, "booking", []string{"pass_id", "user_id", "status", "used_pass", "attended", "started_at", "ended_at", "cancelled_at"}, l.o.Bookings,
		func(b int, _ int64) []any {
			j := b % l.nPasses
			passID := l.firstPass + int64(j)
			user := l.firstUser + int64(j/l.o.PassesPerUser)
			r := l.rng.IntN(10)
			switch {
			case r < 8 && !l.infos[j].ready:
				s := hour.Add(-time.Duration(1+l.rng.IntN(24*14)) * time.Hour)
				return []any{passID, user, "COMPLETED", false, true, s, s.Add(50 * time.Minute), nil}
			case r < 9:
				s := hour.Add(-time.Duration(1+l.rng.IntN(24*14)) * time.Hour)
				return []any{passID, user, "CANCELLED", false, false, s, s.Add(50 * time.Minute), s.Add(-3 * time.Hour)}
			default:
				s := hour.Add(time.Duration(1+l.rng.IntN(24*7)) * time.Hour)
				return []any{passID, user, "READY", false, false, s, s.Add(50 * time.Minute), nil}
			}
		})
	l.res.Bookings, l.res.BookingsTook = l.o.Bookings, time.Since(start)
	l.o.Progress("bookings", l.o.Bookings, l.o.Bookings)
	return err
}

type packageIDs struct{ pt10, pt30, unlimited int64 }

// ensurePackages finds (or creates) the demo packages the bulk set uses.
func ensurePackages(ctx context.Context, db *bun.DB) (packageIDs, error) {
	var ids packageIDs
	find := func(name string, count, period *int, dst *int64) error {
		err := db.NewRaw("SELECT id FROM package WHERE name = ? ORDER BY id LIMIT 1", name).Scan(ctx, dst)
		if err == sql.ErrNoRows {
			return db.NewRaw("INSERT INTO package (name, count, period_days) VALUES (?, ?, ?) RETURNING id", name, count, period).Scan(ctx, dst)
		}
		return err
	}
	if err := find("PT 10회 · 60일", ptr(10), ptr(60), &ids.pt10); err != nil {
		return ids, fmt.Errorf("package: %w", err)
	}
	if err := find("PT 30회 · 180일", ptr(30), ptr(180), &ids.pt30); err != nil {
		return ids, fmt.Errorf("package: %w", err)
	}
	if err := find("무제한 상담", nil, nil, &ids.unlimited); err != nil {
		return ids, fmt.Errorf("package: %w", err)
	}
	return ids, nil
}

// copyRows COPYs n generated rows into table in one transaction. When the
// first column is "id", ids are reserved as a block after the table's
// current maximum (under an exclusive lock) and the sequence is moved past
// them; it returns the first id.
func copyRows(ctx context.Context, conn bun.Conn, table string, cols []string, n int, row func(i int, id int64) []any) (int64, error) {
	if n == 0 {
		return 0, nil
	}
	var first int64
	err := conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
		withID := cols[0] == "id"
		if withID {
			if _, err := tx.Exec(ctx, "LOCK TABLE "+table+" IN EXCLUSIVE MODE"); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, "SELECT coalesce(max(id), 0) + 1 FROM "+table).Scan(&first); err != nil {
				return err
			}
		}
		i := 0
		src := pgx.CopyFromFunc(func() ([]any, error) {
			if i >= n {
				return nil, nil
			}
			r := row(i, first+int64(i))
			i++
			return r, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, src); err != nil {
			return fmt.Errorf("copy into %s: %w", table, err)
		}
		if withID {
			if _, err := tx.Exec(ctx, fmt.Sprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'), %d)", table, first+int64(n)-1)); err != nil {
				return err
			}
		}
		return tx.Commit(ctx)
	})
	if err != nil {
		return 0, fmt.Errorf("bulk seed %s: %w", table, err)
	}
	return first, nil
}
