package tasks_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/notify"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
)

// txProbe looks, at every call a job makes to the outside world (storage,
// the notifier), for a database session of the test that has been sitting
// inside a transaction while the call runs: the caller's own transaction,
// if it called out from inside one.
type txProbe struct {
	db     bun.IDB
	calls  atomic.Int64
	inside atomic.Int64
	what   atomic.Value // the last call made inside a transaction
}

func (p *txProbe) check(ctx context.Context, call string) {
	p.calls.Add(1)
	time.Sleep(100 * time.Millisecond) // a slow call; any other transaction ends meanwhile
	var n int
	_ = p.db.NewRaw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND state LIKE 'idle in transaction%' AND state_change < clock_timestamp() - interval '80 milliseconds'`).Scan(ctx, &n)
	if n > 0 {
		p.inside.Add(1)
		p.what.Store(call)
	}
}

type probeStore struct {
	storage.Store
	p *txProbe
}

func (s probeStore) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	s.p.check(ctx, "put "+key)
	return s.Store.Put(ctx, key, r)
}

func (s probeStore) Delete(ctx context.Context, key string) error {
	s.p.check(ctx, "delete "+key)
	return s.Store.Delete(ctx, key)
}

type probeNotifier struct{ p *txProbe }

func (n probeNotifier) Send(ctx context.Context, m notify.Message) error {
	n.p.check(ctx, "notify "+m.DedupKey)
	return nil
}

// TestNoCallOutInsideATransaction runs every job that calls out — notices,
// statistics reports, exports (parts, merge, expiry, completion event) —
// and checks that no call was made while a transaction was open: a slow
// webhook or store must not hold row locks.
func TestNoCallOutInsideATransaction(t *testing.T) {
	t.Parallel()
	p := &txProbe{}
	b := setup(t, options{notifier: probeNotifier{p}, wrapStore: func(s storage.Store) storage.Store { return probeStore{s, p} }})
	p.db = b.db
	b.exportData(t, 12_000) // three 5000-row parts per partition at most
	at := runAt
	b.exec(t, `INSERT INTO booking (pass_id, user_id, status, started_at, ended_at)
		SELECT 1, 1, 'READY', ?::timestamptz + i * interval '1 minute', ?::timestamptz + i * interval '1 minute' + interval '50 minutes'
		FROM generate_series(1, 5) AS i`, at, at)
	b.exec(t, `INSERT INTO export (id, kind, format, filter_hash, status, expires_at) VALUES (999, 'bookings', 'csv', 'old', 'COMPLETED', now() - interval '1 day')`)
	if _, err := b.store.Put(context.Background(), "exports/999/old.csv", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	requireCompleted(t, b.run(t, tasks.JobNotifyBeforeClass, at))
	requireCompleted(t, b.run(t, tasks.JobMakeStatistics, at, "from=2026-11-01T00:00:00Z", "to=2026-11-02T00:00:00Z"))
	for _, format := range []string{"csv", "xlsx"} {
		b.runExport(t, tasks.ExportRequest{Kind: "bookings", Format: format})
	}
	requireCompleted(t, b.run(t, tasks.JobExpireExports, time.Now()))
	if scan[string](t, b.db, "SELECT status FROM export WHERE id = 999") != "EXPIRED" {
		t.Fatal("the old export was not expired")
	}
	if p.calls.Load() < 10 {
		t.Fatalf("only %d calls out were seen; the probe is not in the path", p.calls.Load())
	}
	if n := p.inside.Load(); n > 0 {
		t.Fatalf("%d of %d calls out ran inside an open transaction (last: %v)", n, p.calls.Load(), p.what.Load())
	}
	t.Logf("%d calls out, none inside a transaction", p.calls.Load())
}
