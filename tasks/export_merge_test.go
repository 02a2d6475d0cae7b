package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/storage"
)

// putFails is a store whose Put of the merged file reads a little of it
// and then fails, as a storage outage mid-upload does.
type putFails struct{ storage.Store }

var errUploadFailed = errors.New("upload failed")

func (s putFails) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if strings.Contains(key, "/parts/") {
		return s.Store.Put(ctx, key, r)
	}
	_, _ = io.CopyN(io.Discard, r, 1024)
	return 0, errUploadFailed
}

// TestMergeStopsWhenTheUploadFails: when storing the merged file fails,
// the goroutine feeding it ends (no goroutine left blocked on the pipe).
func TestMergeStopsWhenTheUploadFails(t *testing.T) {
	ctx := context.Background()
	db := testenv.NewDB(t)
	local, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := putFails{local}
	k := exportKinds["bookings"]
	base := runtime.NumGoroutine()
	for _, format := range []string{"csv", "xlsx"} {
		for p := 0; p < 4; p++ {
			part := make([][]string, 2000)
			for i := range part {
				part[i] = []string{fmt.Sprint(p*2000 + i + 1), fmt.Sprint(i), fmt.Sprintf("user %d", i), "3", "COMPLETED", "true", "true", "2026-11-24T01:00:00Z", "2026-11-24T01:50:00Z", ""}
			}
			if err := writePart(ctx, store, fmt.Sprintf("exports/9/parts/%020d/%020d.part", p, p), format, k, part); err != nil {
				t.Fatal(err)
			}
		}
		e := &models.Export{ID: 9, Kind: "bookings", Format: format}
		if _, err := db.ExecContext(ctx, `INSERT INTO export (id, kind, format, filter_hash, status) VALUES (9, 'bookings', ?, ?, 'RUNNING')
			ON CONFLICT (id) DO NOTHING`, format, format); err != nil {
			t.Fatal(err)
		}
		if _, err := mergeExport(ctx, store, db.DB, e, k, 8000); !errors.Is(err, errUploadFailed) {
			t.Fatalf("%s: merge with a failing upload: %v, want the upload's error", format, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines left behind by the failed merges:\n%s", n-base, buf[:runtime.Stack(buf, true)])
	}
}

// TestExportLoadedOncePerPartition: a partition reads its export's row once,
// whatever the number of its chunks; another partition reads its own.
func TestExportLoadedOncePerPartition(t *testing.T) {
	db := testenv.NewDB(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO export (id, kind, format, filter_hash, status, filter) VALUES (5, 'passes', 'csv', 'h', 'RUNNING', '{}')`); err != nil {
		t.Fatal(err)
	}
	c := &exportCache{}
	p := batch.Params{ParamExportID: {Value: "5", Identifying: true}}
	for chunk := 0; chunk < 5; chunk++ {
		for _, partition := range []int64{101, 102} {
			x, err := c.get(ctx, db.DB, &batch.StepContext{Params: p, StepExecutionID: partition})
			if err != nil || x.export.ID != 5 || x.kind.table == "" {
				t.Fatalf("get: %+v %v", x, err)
			}
		}
	}
	if c.loads != 2 {
		t.Fatalf("2 partitions × 5 chunks loaded the export %d times, want 2", c.loads)
	}
}

// TestRunningExportProgress: a running export's written rows come from its
// job's partitions (the export row is not written per chunk); a finished
// one keeps its own.
func TestRunningExportProgress(t *testing.T) {
	db := testenv.NewDB(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO batch_job_instance (job_instance_id, version, job_name, job_key) VALUES (1, 0, 'export', 'k');
		INSERT INTO batch_job_execution (job_execution_id, version, job_instance_id, status, exit_code, exit_message) VALUES (7, 0, 1, 'STARTED', 'EXECUTING', '');
		INSERT INTO batch_step_execution (step_execution_id, version, step_name, job_execution_id, status, exit_code, exit_message, write_count) VALUES
			(1, 0, 'count', 7, 'COMPLETED', 'COMPLETED', '', 1), (2, 0, 'parts', 7, 'STARTED', 'EXECUTING', '', 0);
		INSERT INTO batch_step_execution (step_execution_id, version, step_name, job_execution_id, parent_step_execution_id, partition_key, status, exit_code, exit_message, write_count) VALUES
			(3, 0, 'parts:partition0', 7, 2, 'p0', 'COMPLETED', 'COMPLETED', '', 5000), (4, 0, 'parts:partition1', 7, 2, 'p1', 'STARTED', 'EXECUTING', '', 1234);`); err != nil {
		t.Fatal(err)
	}
	je := int64(7)
	es := []models.Export{{ID: 1, Status: models.ExportRunning, JobExecutionID: &je}, {ID: 2, Status: models.ExportCompleted, JobExecutionID: &je, WrittenRows: 42}}
	if err := FillWrittenRows(ctx, db.DB, es); err != nil {
		t.Fatal(err)
	}
	if es[0].WrittenRows != 6234 || es[1].WrittenRows != 42 {
		t.Fatalf("written rows %d and %d, want 6234 (running, from its partitions) and 42 (completed, its own)", es[0].WrittenRows, es[1].WrittenRows)
	}
}

// TestExportPartitions: an export takes the setting's partitions, at most
// one per 50,000 rows, unless the launch names them.
func TestExportPartitions(t *testing.T) {
	ctx := context.Background()
	rows := func(n int64) *models.Export { return &models.Export{TotalRows: &n} }
	named := batch.Params{batch.ParamPartitions: {Value: "8"}}
	for _, c := range []struct {
		setting int
		params  batch.Params
		e       *models.Export
		want    int
	}{
		{16, nil, rows(80_000), 2},
		{16, nil, rows(1_000_000), 16},
		{64, nil, rows(1_000_000), 20},
		{16, nil, rows(0), 1},
		{16, nil, &models.Export{}, 16},
		{16, named, rows(40_000), 8},
	} {
		if got := exportPartitions(ctx, Deps{Partitions: c.setting}, &batch.StepContext{Params: c.params}, c.e); got != c.want {
			t.Errorf("setting %d, params %v, rows %v: %d partitions, want %d", c.setting, c.params, c.e.TotalRows, got, c.want)
		}
	}
}

// TestCorruptXLSXPartIsABadPart: a part whose rows do not match its header
// fails the XLSX merge as a bad part (what cleanup looks for), not as an
// error a restart could get past.
func TestCorruptXLSXPartIsABadPart(t *testing.T) {
	ctx := context.Background()
	store, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := exportKinds["bookings"]
	rows := make([][]string, 8)
	for i := range rows {
		rows[i] = []string{fmt.Sprint(i + 1), "7", "김민지", "3", "COMPLETED", "true", "false", "", "", ""}
	}
	if err := writePart(ctx, store, "exports/3/parts/0/0.part", "xlsx", k, rows); err != nil {
		t.Fatal(err)
	}
	f, _ := store.Open(ctx, "exports/3/parts/0/0.part")
	body, _ := io.ReadAll(f)
	f.Close()
	h, _ := decodePartHeader(body[:partHeaderLen])
	h.rows = 100 // the header claims more rows than the payload holds
	if _, err := store.Put(ctx, "exports/3/parts/0/0.part", io.MultiReader(bytes.NewReader(h.encode()), bytes.NewReader(body[partHeaderLen:]))); err != nil {
		t.Fatal(err)
	}
	if _, err := mergeXLSX(ctx, store, partHeaders(t, store, "exports/3/parts/"), k, io.Discard, 10, time.Time{}); !errors.Is(err, errBadPart) {
		t.Fatalf("merge of a corrupt part: %v, want errBadPart", err)
	}
}

// TestRunningExportProgressAcrossRestarts: a restarted export counts the
// rows its earlier execution wrote, since its partitions resume from their
// checkpoints.
func TestRunningExportProgressAcrossRestarts(t *testing.T) {
	db := testenv.NewDB(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO batch_job_instance (job_instance_id, version, job_name, job_key) VALUES (1, 0, 'export', 'k'), (2, 0, 'export', 'other');
		INSERT INTO batch_job_execution (job_execution_id, version, job_instance_id, status, exit_code, exit_message) VALUES
			(7, 0, 1, 'FAILED', 'FAILED', ''), (8, 0, 1, 'STARTED', 'EXECUTING', ''), (9, 0, 2, 'FAILED', 'FAILED', '');
		INSERT INTO batch_step_execution (step_execution_id, version, step_name, job_execution_id, status, exit_code, exit_message) VALUES
			(1, 0, 'parts', 7, 'FAILED', 'FAILED', ''), (2, 0, 'parts', 8, 'STARTED', 'EXECUTING', ''), (3, 0, 'parts', 9, 'FAILED', 'FAILED', '');
		INSERT INTO batch_step_execution (step_execution_id, version, step_name, job_execution_id, parent_step_execution_id, partition_key, status, exit_code, exit_message, write_count) VALUES
			(4, 0, 'parts:partition0', 7, 1, 'p0', 'COMPLETED', 'COMPLETED', '', 5000),
			(5, 0, 'parts:partition1', 7, 1, 'p1', 'FAILED', 'FAILED', '', 2000),
			(6, 0, 'parts:partition0', 8, 2, 'p0', 'COMPLETED', 'NOOP', '', 0),
			(10, 0, 'parts:partition1', 8, 2, 'p1', 'STARTED', 'EXECUTING', '', 1500),
			(11, 0, 'parts:partition0', 9, 3, 'p0', 'FAILED', 'FAILED', '', 999);`); err != nil {
		t.Fatal(err)
	}
	je := int64(8)
	es := []models.Export{{ID: 1, Status: models.ExportRunning, JobExecutionID: &je}}
	if err := FillWrittenRows(ctx, db.DB, es); err != nil {
		t.Fatal(err)
	}
	if es[0].WrittenRows != 8500 {
		t.Fatalf("written rows %d, want 8500 (5000 + 2000 before the restart, 1500 since; not the other instance's)", es[0].WrittenRows)
	}
}

// mergeFixture stores parts of 4 × 500 bookings for export id in format
// and records the export; it returns the export and the rows written.
func mergeFixture(t *testing.T, db *testenv.DB, store storage.Store, id int64, format string) (*models.Export, int64) {
	t.Helper()
	ctx := context.Background()
	k := exportKinds["bookings"]
	for p := 0; p < 4; p++ {
		part := make([][]string, 500)
		for i := range part {
			part[i] = []string{fmt.Sprint(p*500 + i + 1), "7", "김민지", "3", "COMPLETED", "true", "true", "2026-11-24T01:00:00Z", "2026-11-24T01:50:00Z", ""}
		}
		if err := writePart(ctx, store, fmt.Sprintf("exports/%d/parts/%020d/%020d.part", id, p, p), format, k, part); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO export (id, kind, format, filter_hash, status, total_rows) VALUES (?, 'bookings', ?, ?, 'RUNNING', 2000)`,
		id, format, fmt.Sprint("h", id)); err != nil {
		t.Fatal(err)
	}
	return &models.Export{ID: id, Kind: "bookings", Format: format}, 2000
}

// requireMerged checks that export id's file holds rows data rows and the
// export records as many.
func requireMerged(t *testing.T, db *testenv.DB, store storage.Store, id, rows int64) {
	t.Helper()
	var e models.Export
	if err := db.NewSelect().Model(&e).Where("id = ?", id).Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.FileKey == nil || e.WrittenRows != rows {
		t.Fatalf("export %d records %d rows (file %v), want %d", id, e.WrittenRows, e.FileKey, rows)
	}
	f, err := store.Open(context.Background(), *e.FileKey)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	body, _ := io.ReadAll(f)
	if e.Format == "csv" {
		if lines := int64(bytes.Count(body, []byte("\n"))); lines != rows+1 {
			t.Fatalf("export %d: the file holds %d lines, want a header and %d rows", id, lines, rows)
		}
	}
	if int64(len(body)) != *e.SizeBytes {
		t.Fatalf("export %d: %d bytes stored, %d recorded", id, len(body), *e.SizeBytes)
	}
}

// TestMergeTwiceInARow: a merge repeated after it succeeded (its step's
// commit failed, or a duplicate delivery) leaves the good file and its
// record alone: it never records or stores fewer rows than were written.
func TestMergeTwiceInARow(t *testing.T) {
	db := testenv.NewDB(t)
	ctx := context.Background()
	store, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i, format := range []string{"csv", "xlsx"} {
		id := int64(20 + i)
		e, rows := mergeFixture(t, db, store, id, format)
		for run := 0; run < 2; run++ {
			if _, err := mergeExport(ctx, store, db.DB, e, exportKinds["bookings"], rows); err != nil {
				t.Fatalf("%s merge %d: %v", format, run+1, err)
			}
			requireMerged(t, db, store, id, rows)
		}
	}
}

// TestMergeTwiceAtOnce: two merges of one export at the same moment (a
// re-drive while the first still runs) both end with the whole file.
func TestMergeTwiceAtOnce(t *testing.T) {
	db := testenv.NewDB(t)
	ctx := context.Background()
	store, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i, format := range []string{"csv", "xlsx"} {
		id := int64(30 + i)
		e, rows := mergeFixture(t, db, store, id, format)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for run := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[run] = mergeExport(ctx, store, db.DB, e, exportKinds["bookings"], rows)
			}()
		}
		wg.Wait()
		for run, err := range errs {
			if err != nil {
				t.Fatalf("%s merge %d of 2 at once: %v", format, run+1, err)
			}
		}
		requireMerged(t, db, store, id, rows)
	}
}

// TestMergeRefusesMissingRows: parts holding fewer rows than the
// partitions wrote fail the merge with the reason, and nothing is stored.
func TestMergeRefusesMissingRows(t *testing.T) {
	db := testenv.NewDB(t)
	ctx := context.Background()
	store, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, rows := mergeFixture(t, db, store, 40, "csv")
	if err := store.Delete(ctx, fmt.Sprintf("exports/40/parts/%020d/%020d.part", 2, 2)); err != nil {
		t.Fatal(err)
	}
	_, err = mergeExport(ctx, store, db.DB, e, exportKinds["bookings"], rows)
	if !errors.Is(err, errMissingRows) {
		t.Fatalf("merge with a part gone: %v, want errMissingRows", err)
	}
	var key *string
	_ = db.NewRaw("SELECT file_key FROM export WHERE id = 40").Scan(ctx, &key)
	if key != nil {
		t.Fatalf("a short file was recorded: %s", *key)
	}
}

// partHeaders reads the headers of the parts under prefix, in key order.
func partHeaders(t testing.TB, store storage.Store, prefix string) []storedPart {
	t.Helper()
	infos, err := store.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	parts, err := readPartHeaders(context.Background(), store, infos)
	if err != nil {
		t.Fatal(err)
	}
	return parts
}

// TestMergeComposesOnS3: on S3 a CSV export's merge is assembled by the
// server from the stored parts (UploadPartCopy where a part holds 5 MiB),
// not read and written again by the worker; the file holds the BOM, the
// header and every row.
func TestMergeComposesOnS3(t *testing.T) {
	ctx := context.Background()
	db := testenv.NewDB(t)
	fake := testenv.NewS3(t, "exports")
	store, err := storage.NewS3(ctx, "s3://exports/p", storage.S3Options{Endpoint: fake.Endpoint, Insecure: true, AccessKey: "k", Secret: "s", Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	k := exportKinds["bookings"]
	const perPart = 75_000 // about 6 MB of CSV: a part S3 copies
	for p := 0; p < 3; p++ {
		part := make([][]string, perPart)
		for i := range part {
			part[i] = []string{fmt.Sprint(p*perPart + i + 1), "7", "김민지", "3", "COMPLETED", "true", "true", "2026-11-24T01:00:00Z", "2026-11-24T01:50:00Z", ""}
		}
		if err := writePart(ctx, store, fmt.Sprintf("exports/50/parts/%020d/%020d.part", p, p), "csv", k, part); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO export (id, kind, format, filter_hash, status, total_rows) VALUES (50, 'bookings', 'csv', 'h50', 'RUNNING', ?)`, 3*perPart); err != nil {
		t.Fatal(err)
	}
	uploaded := fake.Uploaded.Load()
	e := &models.Export{ID: 50, Kind: "bookings", Format: "csv", BOM: true}
	if _, err := mergeExport(ctx, store, db.DB, e, k, 3*perPart); err != nil {
		t.Fatal(err)
	}
	requireMerged(t, db, store, 50, 3*perPart)
	f, _ := store.Open(ctx, "exports/50/bookings-50.csv")
	body, _ := io.ReadAll(f)
	f.Close()
	if !bytes.HasPrefix(body, []byte("\uFEFFid,user_id,")) {
		t.Fatalf("the file starts %q, want the BOM and the header", body[:20])
	}
	if fake.PartCopies.Load() == 0 || fake.Uploaded.Load()-uploaded > int64(len(body))/2 {
		t.Fatalf("%d part copies; the worker uploaded %d of %d bytes: the merge did not copy on the server",
			fake.PartCopies.Load(), fake.Uploaded.Load()-uploaded, len(body))
	}
}
