package tasks_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/xuri/excelize/v2"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/workbook"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
)

func (b *bundle) exportData(t *testing.T, bookings int) {
	t.Helper()
	b.base(t)
	b.exec(t, `INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at) VALUES (1, 1, 1, 'PROGRESSED', 5, '2026-01-01T00:00:00Z'), (2, 1, 2, 'PROGRESSED', 5, '2026-01-01T00:00:00Z')`)
	b.exec(t, `INSERT INTO booking (pass_id, user_id, status, attended, started_at, ended_at)
		SELECT 1 + i % 2, 1 + i % 2, CASE WHEN i % 7 = 0 THEN 'CANCELLED' ELSE 'COMPLETED' END, i % 3 = 0,
		       timestamptz '2026-11-01T00:00:00Z' + i * interval '1 minute', timestamptz '2026-11-01T00:50:00Z' + i * interval '1 minute'
		FROM generate_series(1, ?) AS i`, bookings)
}

func (b *bundle) runExport(t *testing.T, req tasks.ExportRequest) *models.Export {
	t.Helper()
	ctx := context.Background()
	e, created, err := tasks.RequestExport(ctx, b.db, req, "test", time.Now())
	if err != nil || !created {
		t.Fatalf("request: %v %v", created, err)
	}
	je, err := b.engine.Launch(ctx, tasks.JobExport, batch.Params{tasks.ParamExportID: {Value: fmt.Sprint(e.ID), Identifying: true}})
	if err != nil {
		t.Fatal(err)
	}
	requireCompleted(t, b.wait(t, je.JobExecutionID))
	if err := b.db.NewSelect().Model(e).WherePK().Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if e.Status != models.ExportCompleted || e.FileKey == nil || e.SHA256 == nil || e.TotalRows == nil || *e.TotalRows != e.WrittenRows {
		t.Fatalf("export %+v", e)
	}
	if parts, _ := b.store.List(ctx, fmt.Sprintf("exports/%d/parts/", e.ID)); len(parts) != 0 {
		t.Fatalf("%d part files left", len(parts))
	}
	return e
}

// sourceRows is what the export must contain: the filter's rows in id order.
func (b *bundle) sourceRows(t *testing.T, where string) [][]string {
	t.Helper()
	var rows []struct {
		ID       int64  `bun:"id"`
		UserID   int64  `bun:"user_id"`
		Name     string `bun:"name"`
		PassID   int64  `bun:"pass_id"`
		Status   string `bun:"status"`
		Attended bool   `bun:"attended"`
	}
	if err := b.db.NewRaw("SELECT b.id, b.user_id, u.name, b.pass_id, b.status, b.attended FROM booking b JOIN users u ON u.id = b.user_id WHERE "+where+" ORDER BY b.id").Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = []string{fmt.Sprint(r.ID), fmt.Sprint(r.UserID), r.Name, fmt.Sprint(r.PassID), r.Status, fmt.Sprint(r.Attended)}
	}
	return out
}

func TestExportCSVAndXLSX(t *testing.T) {
	t.Parallel()
	b := setup(t, options{partitions: 16})
	// EXPORT_TEST_ROWS=200000 runs the full size (minutes under -race).
	n := 40_000
	if v, err := strconv.Atoi(os.Getenv("EXPORT_TEST_ROWS")); err == nil && v > 0 {
		n = v
	}
	b.exportData(t, n)
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	for _, format := range []string{"csv", "xlsx"} {
		e := b.runExport(t, tasks.ExportRequest{Kind: "bookings", Format: format, Filter: tasks.ExportFilter{From: &from, Status: "completed"}})
		want := b.sourceRows(t, "b.started_at >= '2026-11-02T00:00:00Z' AND b.status = 'COMPLETED'")
		f, err := b.store.Open(context.Background(), *e.FileKey)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]string
		if format == "csv" {
			body, _ := io.ReadAll(f)
			recs := readCSV(t, body)
			if strings.Join(recs[0], ",") != "id,user_id,user_name,pass_id,status,attended,used_pass,started_at,ended_at,cancelled_at" {
				t.Fatalf("header %v", recs[0])
			}
			got = recs[1:]
		} else {
			x, err := excelize.OpenReader(f)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := x.GetRows("Sheet1")
			if err != nil {
				t.Fatal(err)
			}
			got = recs[1:]
			if typ, _ := x.GetCellType("Sheet1", "H2"); typ != excelize.CellTypeNumber && typ != excelize.CellTypeUnset {
				t.Fatalf("started_at cell type %v, want a date (number)", typ)
			}
			x.Close()
		}
		f.Close()
		if len(got) != len(want) || int64(len(got)) != e.WrittenRows {
			t.Fatalf("%s: %d rows, want %d (written %d)", format, len(got), len(want), e.WrittenRows)
		}
		for i := range want {
			got[i][5] = strings.ToLower(got[i][5]) // XLSX booleans read back as TRUE/FALSE
			if strings.Join(got[i][:6], "|") != strings.Join(want[i], "|") {
				t.Fatalf("%s row %d: %v, want %v", format, i, got[i][:6], want[i])
			}
		}
		if format == "csv" {
			var parts int
			_ = b.db.NewRaw("SELECT count(*) FROM batch_step_execution WHERE step_name LIKE 'parts:partition%' AND parent_step_execution_id IS NOT NULL AND job_execution_id = (SELECT job_execution_id FROM export WHERE id = ?)", e.ID).Scan(context.Background(), &parts)
			// The setting's 16, at most one per 50,000 rows.
			if want := min(16, int((*e.TotalRows+49_999)/50_000)); parts != want {
				t.Fatalf("%d partitions for %d rows, want %d", parts, *e.TotalRows, want)
			}
		}
		// The stored checksum matches the bytes.
		f2, _ := b.store.Open(context.Background(), *e.FileKey)
		body, _ := io.ReadAll(f2)
		f2.Close()
		if int64(len(body)) != *e.SizeBytes {
			t.Fatalf("size %d, recorded %d", len(body), *e.SizeBytes)
		}
	}
}

func TestExportRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, options{partitions: 16})
	b.base(t)
	ctx := context.Background()
	req := tasks.ExportRequest{Kind: "passes", Format: "xlsx", Filter: tasks.ExportFilter{Status: "progressed"}}
	var wg sync.WaitGroup
	ids := make([]int64, 20)
	created := make([]bool, 20)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			e, c, err := tasks.RequestExport(ctx, b.db, req, "test", time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], created[i] = e.ID, c
		}(i)
	}
	wg.Wait()
	n := 0
	for i := range ids {
		if created[i] {
			n++
		}
		if ids[i] != ids[0] {
			t.Fatalf("concurrent identical requests got exports %v", ids)
		}
	}
	if n != 1 {
		t.Fatalf("%d exports created by 20 identical requests, want 1", n)
	}
	other := req
	other.Filter.Status = "EXPIRED"
	if _, c, err := tasks.RequestExport(ctx, b.db, other, "test", time.Now()); err != nil || !c {
		t.Fatalf("a different filter: created %v, %v", c, err)
	}
	for _, bad := range []struct {
		req   tasks.ExportRequest
		field string
	}{
		{tasks.ExportRequest{Kind: "users", Format: "csv"}, "kind"},
		{tasks.ExportRequest{Kind: "passes", Format: "pdf"}, "format"},
		{tasks.ExportRequest{Kind: "passes", Format: "csv", Filter: tasks.ExportFilter{Status: "USED"}}, "filter.status"},
		{tasks.ExportRequest{Kind: "statistics", Format: "csv", Filter: tasks.ExportFilter{UserGroupID: new(int64)}}, "filter.user_group_id"},
	} {
		_, _, err := tasks.RequestExport(ctx, b.db, bad.req, "test", time.Now())
		fe, ok := err.(*tasks.FieldError)
		if !ok || fe.Field != bad.field {
			t.Errorf("%+v: %v, want a FieldError on %s", bad.req, err, bad.field)
		}
	}
	var count int
	_ = b.db.NewRaw("SELECT count(*) FROM export").Scan(ctx, &count)
	if count != 2 {
		t.Fatalf("%d export rows, want 2", count)
	}
}

// faultyStore fails every part write after the first `after`, while
// failing is set: a disk that fills up in the middle of an export.
type faultyStore struct {
	storage.Store
	failing atomic.Bool
	after   int64
	puts    atomic.Int64
}

var errDiskFull = errors.New("disk full")

func (s *faultyStore) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if strings.Contains(key, "/parts/") && s.failing.Load() && s.puts.Add(1) > s.after {
		return 0, &storage.Error{Op: "put", Key: key, Err: errDiskFull, Temporary: true}
	}
	return s.Store.Put(ctx, key, r)
}

func TestExportRestartResumesFinishedPartitions(t *testing.T) {
	t.Parallel()
	fs := &faultyStore{after: 10}
	fs.failing.Store(true)
	b := setup(t, options{partitions: 16, wrapStore: func(s storage.Store) storage.Store { fs.Store = s; return fs }})
	b.exportData(t, 40_000)
	ctx := context.Background()
	e, _, err := tasks.RequestExport(ctx, b.db, tasks.ExportRequest{Kind: "bookings", Format: "csv"}, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// 16 partitions named at launch (40,000 rows would get 2 by default).
	je, err := b.engine.Launch(ctx, tasks.JobExport, batch.Params{tasks.ParamExportID: {Value: fmt.Sprint(e.ID), Identifying: true}, batch.ParamPartitions: {Value: "16"}})
	if err != nil {
		t.Fatal(err)
	}
	first := b.wait(t, je.JobExecutionID)
	if first.Status != batch.StatusFailed {
		t.Fatalf("first execution %s, want FAILED (the store fails)", first.Status)
	}
	failed := scan[models.Export](t, b.db, "SELECT * FROM export WHERE id = ?", e.ID)
	if failed.Status != models.ExportFailed || failed.Error == nil || !strings.Contains(*failed.Error, "disk full") {
		t.Fatalf("export after the failure: %s %v", failed.Status, deref(failed.Error))
	}
	partsOf := func(jeID int64) (done int, doneRows, read int64) {
		var rows []struct {
			Status string `bun:"status"`
			Read   int64  `bun:"read_count"`
		}
		if err := b.db.NewRaw(`SELECT status, read_count FROM batch_step_execution
			WHERE job_execution_id = ? AND step_name LIKE 'parts:partition%' AND parent_step_execution_id IS NOT NULL`, jeID).Scan(ctx, &rows); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			read += r.Read
			if r.Status == batch.StatusCompleted {
				done++
				doneRows += r.Read
			}
		}
		return done, doneRows, read
	}
	done, doneRows, _ := partsOf(first.JobExecutionID)
	if done != 10 {
		t.Fatalf("%d partitions finished before the disk filled, want 10", done)
	}
	fs.failing.Store(false)
	re, err := b.engine.Restart(ctx, first.JobExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	requireCompleted(t, b.wait(t, re.JobExecutionID))
	total := int64(len(b.sourceRows(t, "true")))
	if _, _, read := partsOf(re.JobExecutionID); read != total-doneRows || read >= total {
		t.Fatalf("the restart read %d rows, want the %d the failed partitions had left (of %d)", read, total-doneRows, total)
	}
	got := scan[models.Export](t, b.db, "SELECT * FROM export WHERE id = ?", e.ID)
	if got.Status != models.ExportCompleted || got.Error != nil || got.WrittenRows != total || got.FileKey == nil {
		t.Fatalf("export after the restart: %s written %d of %d, error %v", got.Status, got.WrittenRows, total, deref(got.Error))
	}
	f, err := b.store.Open(ctx, *got.FileKey)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := b.sourceRows(t, "true")
	if len(recs)-1 != len(want) {
		t.Fatalf("%d rows in the file, want %d", len(recs)-1, len(want))
	}
	for i, w := range want {
		if strings.Join(recs[i+1][:6], "|") != strings.Join(w, "|") {
			t.Fatalf("row %d: %v, want %v", i, recs[i+1][:6], w)
		}
	}
	if parts, _ := b.store.List(ctx, fmt.Sprintf("exports/%d/parts/", e.ID)); len(parts) != 0 {
		t.Fatalf("%d part files left", len(parts))
	}

	// A failed export nobody restarts within the retention expires, and
	// its part files go with it.
	b.exec(t, `INSERT INTO export (id, kind, format, filter_hash, status, error, modified_at) VALUES (998, 'bookings', 'csv', 'old-failed', 'FAILED', 'disk full', now() - interval '8 days')`)
	if _, err := b.store.Put(ctx, "exports/998/parts/00/0001.csv", strings.NewReader("1,2\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := tasks.ExpireExports(ctx, b.db, b.store, time.Now()); err != nil || n != 1 {
		t.Fatalf("expire: %d %v, want the failed one", n, err)
	}
	if left, _ := b.store.List(ctx, "exports/998/"); len(left) != 0 || scan[string](t, b.db, "SELECT status FROM export WHERE id = 998") != models.ExportExpired {
		t.Fatalf("expired failed export: %d files left", len(left))
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestExportCSVDefusesFormulas: a member's name that a spreadsheet would
// run as a formula is written with a leading ' in the CSV; numbers and
// times are untouched, and XLSX keeps the name as text.
func TestExportCSVDefusesFormulas(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.exportData(t, 10)
	b.exec(t, `UPDATE users SET name = '=HYPERLINK("http://evil.example","x")' WHERE id = 1`)
	b.exec(t, `UPDATE users SET name = '@SUM(1)' WHERE id = 2`)
	e := b.runExport(t, tasks.ExportRequest{Kind: "bookings", Format: "csv"})
	f, err := b.store.Open(context.Background(), *e.FileKey)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range rows[1:] {
		names[r[2]] = true
		if _, err := strconv.ParseInt(r[0], 10, 64); err != nil {
			t.Fatalf("id cell %q was changed", r[0])
		}
	}
	want := map[string]bool{`'=HYPERLINK("http://evil.example","x")`: true, "'@SUM(1)": true}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("user_name cells %v, want %v", names, want)
	}
}

// TestExpireExportsJob: expire-exports, on its own schedule, expires by
// its run.at (not the wall clock, so a rerun decides the same way) the
// exports past their retention and removes their files; an export whose
// file cannot be removed stays, the others expire, and the run FAILS with
// the reason. An export job itself no longer expires anything.
func TestExpireExportsJob(t *testing.T) {
	t.Parallel()
	failing := &deleteFails{}
	b := setup(t, options{wrapStore: func(s storage.Store) storage.Store { failing.Store = s; return failing }})
	b.exportData(t, 5)
	ctx := context.Background()
	for _, id := range []int{996, 997} {
		if _, err := b.store.Put(ctx, fmt.Sprintf("exports/%d/x.csv", id), strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		b.exec(t, `INSERT INTO export (id, kind, format, filter_hash, status, file_key, expires_at) VALUES (?, 'passes', 'csv', ?, 'COMPLETED', ?, now() + interval '1 hour')`,
			id, fmt.Sprint("later", id), fmt.Sprintf("exports/%d/x.csv", id))
	}
	e := b.runExport(t, tasks.ExportRequest{Kind: "passes", Format: "csv"})
	if st := scan[string](t, b.db, "SELECT status FROM export WHERE id = 997"); st != models.ExportCompleted {
		t.Fatalf("an export job expired another export: %s", st)
	}
	requireCompleted(t, b.run(t, tasks.JobExpireExports, time.Now()))
	if st := scan[string](t, b.db, "SELECT status FROM export WHERE id = 997"); st != models.ExportCompleted {
		t.Fatalf("an export expiring in 1 h, expired at run.at now: %s", st)
	}
	failing.key.Store("exports/996/x.csv")
	je := b.run(t, tasks.JobExpireExports, time.Now().Add(2*time.Hour))
	if je.Status != batch.StatusFailed || !strings.Contains(je.ExitMessage, "export 996") {
		t.Fatalf("expire-exports with a file it cannot remove: %s %q, want FAILED naming export 996", je.Status, je.ExitMessage)
	}
	for id, want := range map[int]string{996: models.ExportCompleted, 997: models.ExportExpired, int(e.ID): models.ExportCompleted} {
		if st := scan[string](t, b.db, "SELECT status FROM export WHERE id = ?", id); st != want {
			t.Fatalf("export %d: %s, want %s", id, st, want)
		}
	}
	if _, err := b.store.Stat(ctx, "exports/997/x.csv"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the expired export's file is still there: %v", err)
	}
}

// deleteFails is a store whose Delete of one key fails.
type deleteFails struct {
	storage.Store
	key atomic.Value
}

func (s *deleteFails) Delete(ctx context.Context, key string) error {
	if k, _ := s.key.Load().(string); k == key {
		return errors.New("storage refuses the delete")
	}
	return s.Store.Delete(ctx, key)
}

// TestExportRunAtDefault: without run.at an export job takes the launch
// time, not identifying.
func TestExportRunAtDefault(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.exportData(t, 5)
	ctx := context.Background()
	// Without run.at the job takes the launch time, not identifying.
	e2, _, _ := tasks.RequestExport(ctx, b.db, tasks.ExportRequest{Kind: "bookings", Format: "csv"}, "test", time.Now())
	je2, err := b.engine.Launch(ctx, tasks.JobExport, batch.Params{tasks.ParamExportID: {Value: fmt.Sprint(e2.ID), Identifying: true}})
	if err != nil {
		t.Fatal(err)
	}
	requireCompleted(t, b.wait(t, je2.JobExecutionID))
	var ident string
	b.db.NewRaw("SELECT identifying FROM batch_job_execution_params WHERE job_execution_id = ? AND parameter_name = 'run.at'", je2.JobExecutionID).Scan(ctx, &ident)
	if ident != "N" {
		t.Fatalf("run.at of an export job: identifying %q, want a non-identifying default", ident)
	}
}

// TestMergeRepeatedAfterItsCommitFailed: the statement that marks the
// merge step COMPLETED fails once (a statement timeout); the merge runs
// again and must leave the export COMPLETED with every row in its file
// (it used to find the parts deleted and store a header-only file,
// recording 0 rows). The parts go only once the merge has committed.
func TestMergeRepeatedAfterItsCommitFailed(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.exportData(t, 12_000)
	b.exec(t, `CREATE SEQUENCE merge_commit_fails;
		CREATE FUNCTION fail_merge_commit_once() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.step_name = 'merge' AND NEW.status = 'COMPLETED' AND OLD.status <> 'COMPLETED' AND nextval('merge_commit_fails') = 1 THEN
				RAISE EXCEPTION 'canceling statement due to statement timeout' USING ERRCODE = '57014';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER fail_merge_commit_once BEFORE UPDATE ON batch_step_execution FOR EACH ROW EXECUTE FUNCTION fail_merge_commit_once()`)
	for _, format := range []string{"csv", "xlsx"} {
		b.exec(t, "ALTER SEQUENCE merge_commit_fails RESTART")
		e := b.runExport(t, tasks.ExportRequest{Kind: "bookings", Format: format, Force: true})
		if n := scan[int](t, b.db, "SELECT last_value FROM merge_commit_fails"); n < 2 {
			t.Fatalf("%s: the merge's commit was not retried (%d tries)", format, n)
		}
		if e.WrittenRows != 12_000 {
			t.Fatalf("%s: export records %d rows after a repeated merge, want 12000", format, e.WrittenRows)
		}
		f, err := b.store.Open(context.Background(), *e.FileKey)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(f)
		f.Close()
		if format == "csv" {
			if lines := strings.Count(string(body), "\n"); lines != 12_001 {
				t.Fatalf("csv: the file holds %d lines after a repeated merge, want 12001", lines)
			}
		} else {
			x, err := excelize.OpenReader(strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			rows, _ := x.GetRows("Sheet1")
			x.Close()
			if len(rows) != 12_001 {
				t.Fatalf("xlsx: %d rows after a repeated merge, want 12001", len(rows))
			}
		}
	}
}

// TestExportFilesForKoreanExcel: a CSV starts with a UTF-8 BOM unless the
// request says bom=false (a different export); an XLSX cell past Excel's
// 32,767 characters is cut on a character boundary with a marker and the
// cut is counted in the export's record; the workbook's entries carry the
// export's time, not the zip epoch.
func TestExportFilesForKoreanExcel(t *testing.T) {
	t.Parallel()
	b := setup(t, options{partitions: 2})
	b.exportData(t, 20)
	long := strings.Repeat("김", 40_000) // 40,000 UTF-16 units, 120,000 bytes
	b.exec(t, `UPDATE users SET name = ? WHERE id = 1`, long)
	ctx := context.Background()
	read := func(e *models.Export) []byte {
		f, err := b.store.Open(ctx, *e.FileKey)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		body, _ := io.ReadAll(f)
		return body
	}

	withBOM := b.runExport(t, tasks.ExportRequest{Kind: "bookings", Format: "csv"})
	if body := read(withBOM); !withBOM.BOM || !strings.HasPrefix(string(body), "\uFEFFid,user_id,") {
		t.Fatalf("default CSV: bom %v, starts %q; want the UTF-8 BOM", withBOM.BOM, body[:12])
	} else if !strings.Contains(string(body), long) {
		t.Fatal("the CSV cut a long name: only XLSX cells have Excel's limit")
	}
	plain := b.runExport(t, tasks.ExportRequest{Kind: "bookings", Format: "csv", BOM: new(false)})
	if body := read(plain); plain.ID == withBOM.ID || plain.BOM || !strings.HasPrefix(string(body), "id,user_id,") {
		t.Fatalf("bom=false: export %d (default %d), bom %v, starts %q", plain.ID, withBOM.ID, plain.BOM, body[:12])
	}
	if int64(len(read(withBOM)))-int64(len(read(plain))) != 3 {
		t.Fatal("the two CSVs differ by more than the BOM")
	}

	x := b.runExport(t, tasks.ExportRequest{Kind: "bookings", Format: "xlsx"})
	if x.TruncatedCells != 10 { // user 1's ten bookings
		t.Fatalf("truncated_cells %d, want 10", x.TruncatedCells)
	}
	body := read(x)
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if d := f.Modified.Sub(x.CreatedAt); d < -time.Minute || d > time.Minute {
			t.Fatalf("%s modified %v, the export was made %v", f.Name, f.Modified, x.CreatedAt)
		}
	}
	wb, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	name, _ := wb.GetCellValue("Sheet1", "C2") // booking 1 is user 2's
	cut, _ := wb.GetCellValue("Sheet1", "C3")
	if name != "이서준" || !strings.HasSuffix(cut, workbook.CutMarker) || len(utf16.Encode([]rune(cut))) > workbook.MaxCellChars ||
		!strings.HasPrefix(long, strings.TrimSuffix(cut, workbook.CutMarker)) || len(utf16.Encode([]rune(cut))) < workbook.MaxCellChars-20 {
		t.Fatalf("C2 %q; C3 %d UTF-16 units ending %q, want at most %d ending %q",
			name, len(utf16.Encode([]rune(cut))), cut[max(0, len(cut)-20):], workbook.MaxCellChars, workbook.CutMarker)
	}
}
