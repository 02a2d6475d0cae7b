package chaos

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scenario is one fault injected into a running use-passes.
type scenario struct {
	name  string // short id, (a)…(h) in the order
	fault string // what is done, for the report
	// fast scenarios also run in make test.
	fast bool
	// opts shape the run (processes, retries, Redis as Sentinels).
	opts runOptions
	// inject performs the fault once the job is mid-way and returns when
	// the fault ended (the recovery clock starts there) and a note.
	inject func(r *run) (ended time.Time, note string)
	// after runs once the job COMPLETED (e.g. thaw a frozen worker).
	after func(r *run)
	// bound is how much longer than the run without the fault a full run
	// may take, or (since) how long after the fault ended it must finish;
	// 0: no bound.
	bound time.Duration
	since bool
}

func scenarios() []scenario {
	return []scenario{
		{name: "a-sigkill", fault: "SIGKILL one of 3 workers mid-chunk", fast: true, bound: 15 * time.Second,
			inject: func(r *run) (time.Time, string) {
				r.workers[0].kill()
				return time.Now(), "not replaced: 2 workers finish"
			}},
		{name: "b-rolling-sigterm", fault: "SIGTERM each worker in turn, a replacement started after each exit (a rolling deploy)", fast: true, bound: 10 * time.Second,
			inject: func(r *run) (time.Time, string) {
				var exits []string
				for i, w := range r.workers {
					took := w.stop(time.Minute)
					if _, err := w.exited(); err != nil {
						r.t.Errorf("%s exited with %v after SIGTERM, want status 0", w.name, err)
					}
					exits = append(exits, took.Round(10*time.Millisecond).String())
					r.workers[i] = r.startWorker()
				}
				return time.Now(), "exits after SIGTERM: " + strings.Join(exits, ", ")
			}},
		{name: "c-redis-restart", fault: "Redis restarted empty (every queued and running task lost)",
			inject: func(r *run) (time.Time, string) {
				r.s.rd.restart()
				return time.Now(), fmt.Sprintf("re-driven by the reconciler after RECONCILE_STALE_AFTER=%s", staleAfter)
			}},
		{name: "d-postgres-restart", fault: "Postgres restarted (pg_ctl restart -m immediate)", fast: true,
			inject: func(r *run) (time.Time, string) {
				start := time.Now()
				r.s.pg.restart()
				return time.Now(), fmt.Sprintf("Postgres down and back in %s", time.Since(start).Round(10*time.Millisecond))
			}},
		{name: "e-terminate-backends", fault: "pg_terminate_backend of every worker connection", fast: true,
			inject: func(r *run) (time.Time, string) {
				n := r.terminateWorkers()
				if n == 0 {
					r.t.Error("no worker connection to terminate")
				}
				return time.Now(), fmt.Sprintf("%d connections terminated", n)
			}},
		{name: "f-outage-past-retries", fault: "Postgres down until every task exhausted its retries (TASK_MAX_RETRY=3) and was archived, then back",
			opts: runOptions{maxRetry: 3}, since: true, bound: 2 * staleAfter,
			inject: func(r *run) (time.Time, string) {
				start := time.Now()
				r.s.pg.stop()
				archived := 0
				for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
					a, waiting := r.archived()
					if a > 0 && waiting == 0 {
						archived = a
						break
					}
				}
				if archived == 0 {
					r.t.Fatal("the tasks were not archived during the outage")
				}
				// Long enough for every heartbeat to go stale as well.
				time.Sleep(time.Until(start.Add(12 * time.Second)))
				down := time.Since(start)
				r.s.pg.start()
				return time.Now(), fmt.Sprintf("down %s; %d tasks archived", down.Round(100*time.Millisecond), archived)
			}},
		{name: "g-scheduler-killed", fault: "two schedulers; one SIGKILLed together with a worker", fast: true, opts: runOptions{schedulers: 2}, bound: 15 * time.Second,
			inject: func(r *run) (time.Time, string) {
				r.schedulers[0].kill()
				r.workers[0].kill()
				return time.Now(), "the other scheduler's reconciler fails the worker over"
			}},
		{name: "h-sigstop", fault: "SIGSTOP one worker mid-chunk; SIGCONT after the job ended", fast: true, bound: 15 * time.Second,
			inject: func(r *run) (time.Time, string) {
				w := r.workers[0]
				inside := false
				for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && !inside; {
					inside = r.inTransaction(w)
				}
				w.signal(syscall.SIGSTOP)
				return time.Now(), fmt.Sprintf("frozen inside a transaction: %v", inside && r.inTransaction(w))
			},
			after: func(r *run) {
				r.workers[0].signal(syscall.SIGCONT)
				time.Sleep(3 * time.Second) // the zombie wakes up and must change nothing
			}},
		{name: "i-postgres-switch", fault: "the primary moves: Postgres stopped on one port and the same data started on the other (DATABASE_URL lists both, target_session_attrs=read-write)", fast: true,
			inject: func(r *run) (time.Time, string) {
				start := time.Now()
				r.s.pg.switchPort()
				return time.Now(), fmt.Sprintf("no server for %s; every process reconnected to the second host", time.Since(start).Round(10*time.Millisecond))
			}},
		{name: "j-redis-sentinel-failover", fault: "Redis as primary + replica + 3 Sentinels (REDIS_URL=redis-sentinel://…, an api launching, 2 workers, the scheduler): the primary SIGKILLed", fast: true,
			opts: runOptions{workers: 2, sentinel: true},
			inject: func(r *run) (time.Time, string) {
				took := r.sentinels.killPrimary()
				ended := time.Now()
				time.Sleep(time.Second)
				q := r.queues()
				r.t.Logf("queues on the new primary 1 s after the promotion: %s", q)
				return ended, fmt.Sprintf("replica promoted %s after the kill; queues 1 s later: %s", took.Round(10*time.Millisecond), q)
			},
			after: func(r *run) {
				if !r.apiReady() {
					r.t.Error("the api's /readyz is not 200 after the failover")
				}
			}},
	}
}

// result is one scenario's figures.
type result struct {
	sc                     scenario
	total, recovery, extra time.Duration
	note                   string
}

// TestChaos runs use-passes without a fault, then under each fault, and
// checks after each that the job COMPLETED with every invariant holding.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process fault suite")
	}
	s := newSuite(t)
	// The run without a fault, three times: its median is the baseline.
	var runs []time.Duration
	for i := 0; i < 3; i++ {
		base := s.newRun(t, fmt.Sprintf("baseline-%d", i), runOptions{})
		base.launch()
		runs = append(runs, base.waitDone(3*time.Minute).Sub(base.launched))
		base.requireInvariants()
		base.stopAll()
	}
	slices.Sort(runs)
	baseline := runs[1]
	t.Logf("baseline: %d bookings deducted in %s (runs %v)", s.eligible, baseline.Round(time.Millisecond), runs)
	var results []result
	for _, sc := range scenarios() {
		if !s.full && !sc.fast {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			res := s.runScenario(t, sc, baseline)
			results = append(results, res)
			t.Logf("%s: total %s (%s over the run without fault), COMPLETED %s after the fault; %s",
				sc.name, res.total.Round(time.Millisecond), signed(res.extra), res.recovery.Round(time.Millisecond), res.note)
		})
	}
	if s.full {
		writeResults(t, s, baseline, results)
	}
}

func (s *suite) runScenario(t *testing.T, sc scenario, baseline time.Duration) result {
	r := s.newRun(t, sc.name, sc.opts)
	defer r.stopAll()
	r.launch()
	r.waitProgress(0.2)
	ended, note := sc.inject(r)
	done := r.waitDone(5 * time.Minute)
	if sc.after != nil {
		sc.after(r)
	}
	r.requireInvariants()
	if os.Getenv("CHAOS_LOGS") != "" {
		r.dumpLogs()
	}
	res := result{sc: sc, total: done.Sub(r.launched), recovery: done.Sub(ended), note: note}
	res.extra = res.total - baseline
	if s.full && sc.bound > 0 {
		got, what := res.extra, "more than the run without the fault"
		if sc.since {
			got, what = res.recovery, "after the fault ended"
		}
		if got > sc.bound {
			t.Errorf("%s: COMPLETED %s %s, want at most %s", sc.name, got.Round(time.Millisecond), what, sc.bound)
		}
	}
	return res
}

// signed formats d with its sign.
func signed(d time.Duration) string {
	if d < 0 {
		return "−" + (-d).Round(10*time.Millisecond).String()
	}
	return "+" + d.Round(10*time.Millisecond).String()
}

// writeResults writes results.md (make chaos).
func writeResults(t *testing.T, s *suite, baseline time.Duration, results []result) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Chaos results\n\nOne run of `make chaos` (`CHAOS_FULL=1 go test -run TestChaos -v ./chaos/`), %s, on %d cores (%s), Postgres with fsync off.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "use-passes over %d bookings to deduct, %d worker processes × concurrency %d, one scheduler (two in g; in j 2 workers, an api and Redis behind three Sentinels); RECONCILE_EVERY=%s, RECONCILE_STALE_AFTER=%s, FAILOVER_AFTER=5s, DB_IDLE_IN_TRANSACTION_TIMEOUT=5s. Each fault lands when 20%% of the bookings are deducted. Every scenario ended COMPLETED with no human action, and after each: every eligible booking deducted once, each pass down by exactly its bookings, none below zero, read = write = the eligible count, no skip, no step execution left running.\n\n",
		s.eligible, workers, concurrency, reconcileEvery, staleAfter)
	fmt.Fprintf(&b, "Run without a fault: **%s** (the median of three; runs on this shared machine vary by about a second, so a difference under that is noise).\n\n", baseline.Round(10*time.Millisecond))
	b.WriteString("| scenario | fault | total | over the run without fault | fault ended → COMPLETED | bound | note |\n|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		bound := "—"
		if r.sc.bound > 0 {
			bound = "≤ " + r.sc.bound.String() + " over"
			if r.sc.since {
				bound = "≤ " + r.sc.bound.String() + " after (2 × stale)"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.sc.name, r.sc.fault, r.total.Round(10*time.Millisecond),
			signed(r.extra), r.recovery.Round(10*time.Millisecond), bound, r.note)
	}
	if err := os.WriteFile("results.md", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote chaos/results.md")
}
