package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
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
		if _, err := mergeExport(ctx, store, nil, e, k); !errors.Is(err, errUploadFailed) {
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
// one per 25,000 rows, unless the launch names them.
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
		{16, nil, rows(40_000), 2},
		{16, nil, rows(1_000_000), 16},
		{64, nil, rows(1_000_000), 40},
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
	parts, _ := store.List(ctx, "exports/3/parts/")
	if _, err := mergeXLSX(ctx, store, parts, k, io.Discard, 10); !errors.Is(err, errBadPart) {
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
