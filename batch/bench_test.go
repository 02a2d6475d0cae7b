package batch_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
	"github.com/passbatch/passbatch/internal/bench"
)

// BenchmarkEngine runs the test job (n = n + 1 on every row) over
// BENCH_ROWS rows (default 1,000,000) with 1 and 2 real worker processes,
// and in the same run the single set-based UPDATE doing the same change —
// the physical limit on this database. Run it with:
//
//	go test -run '^$' -bench Engine -benchtime 1x ./batch/
//
// It reports items/s, the ratio to the UPDATE, and the workers' peak RSS.
func BenchmarkEngine(b *testing.B) {
	rows := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	bb := setup(b, rows, testjob.IncJob("inc-bench", testjob.Options{Partitions: 32, ChunkSize: 5000}))
	bin := filepath.Join(b.TempDir(), "testworker")
	if out, err := exec.Command("go", "build", "-o", bin, "./internal/testjob/testworker").CombinedOutput(); err != nil {
		b.Fatalf("build testworker: %v\n%s", err, out)
	}
	ctx := context.Background()
	reset := func() {
		for _, q := range []string{"UPDATE t SET n = 0", "VACUUM ANALYZE t"} {
			if _, err := bb.db.ExecContext(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	}
	var setBased float64
	b.Run("set-based-update", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			reset()
			start := time.Now()
			if _, err := bb.db.ExecContext(ctx, "UPDATE t SET n = n + 1"); err != nil {
				b.Fatal(err)
			}
			setBased = float64(rows) / time.Since(start).Seconds()
			b.ReportMetric(setBased, "items/s")
		}
	})
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("job-%d-workers", workers), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				reset()
				var procs []*exec.Cmd
				for w := 0; w < workers; w++ {
					cmd := exec.Command(bin)
					cmd.Env = append(os.Environ(), "DATABASE_URL="+bb.db.URL, "REDIS_URL="+bb.redis.URL)
					if err := cmd.Start(); err != nil {
						b.Fatal(err)
					}
					procs = append(procs, cmd)
				}
				time.Sleep(300 * time.Millisecond) // let them connect
				start := time.Now()
				je, err := bb.engine.Launch(ctx, "inc-bench", batch.Params{"i": {Value: fmt.Sprint(workers, "-", i), Identifying: true}})
				if err != nil {
					b.Fatal(err)
				}
				got := bb.wait(b, je.JobExecutionID, 30*time.Minute)
				elapsed := time.Since(start)
				var peak int64
				for _, p := range procs {
					if kb := bench.PeakRSSKB(p.Process.Pid); kb > peak {
						peak = kb
					}
					_ = p.Process.Signal(syscall.SIGTERM)
					_ = p.Wait()
				}
				if got.Status != batch.StatusCompleted {
					b.Fatalf("status %s: %s", got.Status, got.ExitMessage)
				}
				var ones int
				if err := bb.db.NewRaw("SELECT count(*) FROM t WHERE n = 1").Scan(ctx, &ones); err != nil || ones != rows {
					b.Fatalf("n = 1 on %d of %d rows (%v)", ones, rows, err)
				}
				ips := float64(rows) / elapsed.Seconds()
				b.ReportMetric(ips, "items/s")
				if setBased > 0 {
					b.ReportMetric(ips/setBased, "x-set-based")
				}
				b.ReportMetric(float64(peak)/1024, "worker-peak-MB")
			}
		})
	}
}
