package tasks_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/storage"
	"github.com/passbatch/passbatch/tasks"
)

// TestExportSurvivesKilledWorker runs an export on real cmd/worker
// processes and SIGKILLs the first one while it holds partitions mid-way:
// the export still completes with every row once, in order.
func TestExportSurvivesKilledWorker(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-process test")
	}
	ctx := context.Background()
	db := testenv.NewDB(t)
	rd := testenv.NewRedis(t)
	b := &bundle{db: db}
	const n = 240_000
	b.exportData(t, n)
	dir := t.TempDir()
	bin := filepath.Join(dir, "worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/worker").CombinedOutput(); err != nil {
		t.Fatalf("build worker: %v\n%s", err, out)
	}
	files := filepath.Join(dir, "files")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+db.URL, "REDIS_URL="+rd.URL, "STORAGE_DIR="+files, "LOG_LEVEL=error",
			"LOG_FORMAT=text", "WORKER_CONCURRENCY=4", "METRICS_ADDR=")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
		return cmd
	}
	store, _ := storage.NewLocal(files)
	opt, _ := asynq.ParseRedisURI(rd.URL)
	client := asynq.NewClient(opt)
	defer client.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := batch.New(db.DB, client, tasks.Registry(tasks.Deps{DB: db.DB, Store: store, Logger: log}), batch.Options{Logger: log})

	victim := start()
	e, _, err := tasks.RequestExport(ctx, db, tasks.ExportRequest{Kind: "bookings", Format: "csv"}, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// 8 partitions named, of two 20,000-row chunks each, 4 at once: some
	// finish while others are mid-way.
	je, err := eng.Launch(ctx, tasks.JobExport, batch.Params{tasks.ParamExportID: {Value: fmt.Sprint(e.ID), Identifying: true}, batch.ParamPartitions: {Value: "8"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	var midway int
	for time.Now().Before(deadline) {
		// The victim is the only worker: once some partitions are done and
		// others are not, it holds the others mid-way.
		_ = db.NewRaw(`SELECT CASE WHEN count(*) FILTER (WHERE status = 'COMPLETED') BETWEEN 1 AND count(*) - 4
			AND count(*) FILTER (WHERE commit_count > 0 AND status = 'STARTED') > 0 THEN 1 ELSE 0 END
			FROM batch_step_execution WHERE job_execution_id = ? AND step_name LIKE 'parts:partition%' AND parent_step_execution_id IS NOT NULL`,
			je.JobExecutionID).Scan(ctx, &midway)
		if midway > 0 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if midway == 0 {
		t.Fatal("no partition was mid-way")
	}
	start()
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if err := db.NewSelect().Model(e).WherePK().Scan(ctx); err != nil {
			t.Fatal(err)
		}
		if e.Status == models.ExportCompleted || e.Status == models.ExportFailed || time.Now().After(deadline) {
			break
		}
	}
	if e.Status != models.ExportCompleted {
		t.Fatalf("export %s: %v", e.Status, e.Error)
	}
	f, err := store.Open(ctx, *e.FileKey)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs)-1 != n {
		t.Fatalf("%d rows after the kill, want %d", len(recs)-1, n)
	}
	for i, r := range recs[1:] {
		if r[0] != fmt.Sprint(i+1) {
			t.Fatalf("row %d has id %s: a row is missing, doubled or out of order", i, r[0])
		}
	}
}
