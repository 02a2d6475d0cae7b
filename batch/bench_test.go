package batch_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
	"github.com/passbatch/passbatch/benchmark"
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
					if kb := benchmark.PeakRSSKB(p.Process.Pid); kb > peak {
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

// BenchmarkSmallJob measures a small job's fixed cost: launch → COMPLETED
// (the repository's times) of a one-partition job over 100 rows with an
// idle in-process worker, and counts the statements it took. Run it with:
//
//	go test -run '^$' -bench SmallJob -benchtime 20x ./batch/
func BenchmarkSmallJob(b *testing.B) {
	bb := setup(b, 100, testjob.IncJob("small", testjob.Options{Partitions: 1, ChunkSize: 500}))
	counter := &statementCounter{}
	bb.db.AddQueryHook(counter)
	opt, _ := asynq.ParseRedisURI(bb.redis.URL)
	w := bb.engine.NewWorker(opt, batch.WorkerOptions{Concurrency: 4, Logger: quietLogger()})
	if err := w.Start(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	defer w.Stop(context.Background())
	time.Sleep(500 * time.Millisecond)
	ctx := context.Background()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		if _, err := bb.db.ExecContext(ctx, "UPDATE t SET n = 0"); err != nil {
			b.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // idle
		counter.n.Store(0)
		je, err := bb.engine.Launch(ctx, "small", batch.Params{"run": {Value: strconv.Itoa(i), Identifying: true}})
		if err != nil {
			b.Fatal(err)
		}
		var end *time.Time
		var create time.Time
		for end == nil {
			time.Sleep(5 * time.Millisecond)
			if err := bb.db.NewRaw("SELECT create_time, end_time FROM batch_job_execution WHERE job_execution_id = ?", je.JobExecutionID).Scan(ctx, &create, &end); err != nil {
				b.Fatal(err)
			}
		}
		total += end.Sub(create)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/job")
	b.ReportMetric(float64(counter.n.Load()), "statements/job")
}

// statementCounter counts the statements run through a bun.DB.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}
func (c *statementCounter) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if !strings.HasPrefix(e.Query, "SELECT create_time, end_time") {
		c.n.Add(1)
	}
}
