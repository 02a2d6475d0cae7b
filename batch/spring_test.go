package batch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/batch/internal/testjob"
)

// ran records which tasklets ran, in a table of the test database, so
// tests read it like any other outcome.
func ranStep(name string) *batch.Step {
	return batch.NewTasklet(name, func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
		_, err := tx.ExecContext(ctx, "INSERT INTO ran (job_execution_id, step) VALUES (?, ?)", sc.JobExecutionID, sc.StepName)
		return batch.Finished, err
	})
}

func (b *bundle) createRan(t *testing.T) {
	t.Helper()
	if _, err := b.db.ExecContext(context.Background(), "CREATE TABLE ran (id bigserial PRIMARY KEY, job_execution_id bigint, step text)"); err != nil {
		t.Fatal(err)
	}
}

// ranSteps lists the steps that ran in execution id, in order.
func (b *bundle) ranSteps(t *testing.T, id int64) string {
	t.Helper()
	var steps []string
	if err := b.db.NewRaw("SELECT step FROM ran WHERE job_execution_id = ? ORDER BY id", id).Scan(context.Background(), &steps); err != nil {
		t.Fatal(err)
	}
	return strings.Join(steps, ",")
}

func failing(name string) *batch.Step {
	return batch.NewTasklet(name, func(context.Context, bun.Tx, *batch.StepContext) (batch.RepeatStatus, error) {
		return batch.Finished, errors.New("boom")
	})
}

// TestFlowToRecoveryOnFailed: a failing step goes to its recovery step on
// FAILED and the job ends COMPLETED; the step after it in the flow, and
// the recovery step when nothing fails, do not run.
func TestFlowToRecoveryOnFailed(t *testing.T) {
	t.Parallel()
	job := &batch.Job{Name: "recovering", Flow: []batch.Node{
		failing("load").On("FAILED", batch.To("recover")),
		ranStep("report"),
		ranStep("recover"),
	}}
	fine := &batch.Job{Name: "fine", Flow: []batch.Node{
		ranStep("load").On("FAILED", batch.To("recover")),
		ranStep("report"),
		ranStep("recover"),
	}}
	b := setup(t, 0, job, fine)
	b.createRan(t)
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "recovering")
	je := b.wait(t, id, time.Minute)
	requireStatus(t, je, batch.StatusCompleted)
	if je.ExitCode != batch.ExitCompleted || b.ranSteps(t, id) != "recover" {
		t.Fatalf("exit %s, ran %q; want COMPLETED after recover alone", je.ExitCode, b.ranSteps(t, id))
	}
	if se := topStep(t, b.db, id, "load"); se.Status != batch.StatusFailed {
		t.Fatalf("load %s, want FAILED", se.Status)
	}
	path, err := b.engine.FlowPath(context.Background(), id)
	if err != nil || strings.Join(path, "; ") != "load -[FAILED]-> recover" {
		t.Fatalf("transitions taken %q %v", path, err)
	}
	id = b.launch(t, "fine")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	if got := b.ranSteps(t, id); got != "load,report" {
		t.Fatalf("without a failure ran %q, want load,report", got)
	}
}

// TestDeciderChoosesABranch: a step reports an exit status of its own, a
// decider reads it and routes to one of three branches; all three meet at
// the last step.
func TestDeciderChoosesABranch(t *testing.T) {
	t.Parallel()
	classify := batch.NewTasklet("classify", func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
		sc.ExitStatus = "SIZE " + sc.Params.String("size", "")
		return batch.Finished, nil
	})
	decide := batch.NewDecider("route", func(ctx context.Context, db bun.IDB, je *batch.JobExecution, last *batch.StepExecution) (string, error) {
		if last == nil || last.StepName != "classify" {
			return "", fmt.Errorf("last step %v, want classify", last)
		}
		return strings.TrimPrefix(last.ExitCode, "SIZE "), nil
	}).On("small", batch.To("one")).On("large", batch.To("many")).On("*", batch.To("unknown"))
	job := &batch.Job{Name: "routed", Flow: []batch.Node{classify, decide, ranStep("one"), ranStep("many"), ranStep("unknown"), ranStep("done")}}
	b := setup(t, 0, job)
	b.createRan(t)
	b.startWorkers(t, 1, 2)
	for size, want := range map[string]string{"small": "one,done", "large": "many,done", "huge": "unknown,done"} {
		id := b.launch(t, "routed", "size="+size)
		requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
		if got := b.ranSteps(t, id); got != want {
			t.Fatalf("size %s ran %q, want %q", size, got, want)
		}
		if se := topStep(t, b.db, id, "route"); se.ExitCode != size {
			t.Fatalf("decider recorded %q", se.ExitCode)
		}
	}
}

// TestEndFailAndStopAndRestart: transitions that end the job: EndWith
// sets its exit status; Fail fails it after a completed step; StopAndRestart
// stops it, and the restart begins at the named step.
func TestEndFailAndStopAndRestart(t *testing.T) {
	t.Parallel()
	ending := &batch.Job{Name: "ending", Flow: []batch.Node{ranStep("a").On("COMPLETED", batch.EndWith("EARLY")), ranStep("b")}}
	failed := &batch.Job{Name: "failed", Flow: []batch.Node{ranStep("a").On("*", batch.Fail()), ranStep("b")}}
	pausing := &batch.Job{Name: "pausing", Flow: []batch.Node{ranStep("a").On("COMPLETED", batch.StopAndRestart("b")), ranStep("b")}}
	b := setup(t, 0, ending, failed, pausing)
	b.createRan(t)
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "ending")
	if je := b.wait(t, id, time.Minute); je.Status != batch.StatusCompleted || je.ExitCode != "EARLY" || b.ranSteps(t, id) != "a" {
		t.Fatalf("ending: %s %s, ran %q", je.Status, je.ExitCode, b.ranSteps(t, id))
	}
	id = b.launch(t, "failed")
	if je := b.wait(t, id, time.Minute); je.Status != batch.StatusFailed || !strings.Contains(je.ExitMessage, "a ended COMPLETED") {
		t.Fatalf("failed: %s %q", je.Status, je.ExitMessage)
	}
	id = b.launch(t, "pausing")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusStopped)
	next, err := b.engine.Restart(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, next.JobExecutionID, time.Minute), batch.StatusCompleted)
	if got := b.ranSteps(t, id) + "|" + b.ranSteps(t, next.JobExecutionID); got != "a|b" {
		t.Fatalf("stop and restart ran %q, want a then b", got)
	}
}

// TestAllowStartIfComplete: on restart, the step that allows a start when
// complete runs again; its completed neighbour does not.
func TestAllowStartIfComplete(t *testing.T) {
	t.Parallel()
	x := batch.NewTasklet("x", func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
		var execs int
		if err := tx.NewRaw("SELECT count(DISTINCT job_execution_id) FROM ran").Scan(ctx, &execs); err != nil {
			return batch.Finished, err
		}
		if execs < 2 {
			return batch.Finished, errors.New("fails in the first execution")
		}
		return batch.Finished, nil
	})
	job := &batch.Job{Name: "recount", Flow: []batch.Node{ranStep("count").AllowStartIfComplete(), ranStep("load"), x}}
	b := setup(t, 0, job)
	b.createRan(t)
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "recount")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusFailed)
	next, err := b.engine.Restart(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, next.JobExecutionID, time.Minute), batch.StatusCompleted)
	if got := b.ranSteps(t, id) + "|" + b.ranSteps(t, next.JobExecutionID); got != "count,load|count" {
		t.Fatalf("ran %q, want count,load then count alone", got)
	}
}

// failsFirst is a tasklet that fails in an instance's first execution
// and succeeds in the next (it counts the executions in ran).
func failsFirst(name string) *batch.Step {
	return batch.NewTasklet(name, func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
		var execs int
		if err := tx.NewRaw("SELECT count(*) FROM batch_job_execution").Scan(ctx, &execs); err != nil {
			return batch.Finished, err
		}
		if execs < 2 {
			return batch.Finished, errors.New("fails in the first execution")
		}
		return batch.Finished, nil
	})
}

// TestAllowStartIfCompletePartitioned: a partitioned step that allows a
// start when complete reads every row again on restart, as Spring Batch
// re-runs such a step: the restart may not reuse its COMPLETED partitions.
func TestAllowStartIfCompletePartitioned(t *testing.T) {
	t.Parallel()
	const rows = 300
	job := &batch.Job{Name: "reread", Flow: []batch.Node{
		testjob.IncStep("inc", testjob.Options{Partitions: 3, ChunkSize: 40}).AllowStartIfComplete(), failsFirst("x")}}
	b := setup(t, rows, job)
	ctx := context.Background()
	if _, err := b.db.ExecContext(ctx, "ALTER TABLE t DROP CONSTRAINT t_n_check"); err != nil { // a second pass is the point
		t.Fatal(err)
	}
	b.startWorkers(t, 1, 4)
	id := b.launch(t, "reread")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusFailed)
	next, err := b.engine.Restart(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, next.JobExecutionID, time.Minute), batch.StatusCompleted)
	var twice int
	if err := b.db.NewRaw("SELECT count(*) FROM t WHERE n = 2").Scan(ctx, &twice); err != nil {
		t.Fatal(err)
	}
	if inc := topStep(t, b.db, next.JobExecutionID, "inc"); twice != rows || inc.ReadCount != rows {
		t.Fatalf("the restart read %d rows and applied %d twice; want all %d read again", inc.ReadCount, twice, rows)
	}
}

// TestAllowStartIfCompleteTaskletContext: a COMPLETED tasklet run again
// on restart starts with an empty execution context (Spring restores the
// context only of an execution that did not complete).
func TestAllowStartIfCompleteTaskletContext(t *testing.T) {
	t.Parallel()
	counter := batch.NewTasklet("counter", func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
		n, _ := sc.Context["runs"].(json.Number)
		runs, _ := n.Int64()
		sc.Context["runs"] = runs + 1
		_, err := tx.ExecContext(ctx, "INSERT INTO ran (job_execution_id, step) VALUES (?, ?)", sc.JobExecutionID, fmt.Sprint(runs+1))
		return batch.Finished, err
	}).AllowStartIfComplete()
	job := &batch.Job{Name: "fresh", Flow: []batch.Node{counter, failsFirst("x")}}
	b := setup(t, 0, job)
	b.createRan(t)
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "fresh")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusFailed)
	next, err := b.engine.Restart(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, next.JobExecutionID, time.Minute), batch.StatusCompleted)
	if got := b.ranSteps(t, id) + "|" + b.ranSteps(t, next.JobExecutionID); got != "1|1" {
		t.Fatalf("the counter saw runs %q, want 1|1: a completed tasklet's context is not carried into its re-run", got)
	}
}

// TestStartLimit: a step with StartLimit(2) starts twice across its
// instance's executions; the third start fails it with the reason.
func TestStartLimit(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	job := &batch.Job{Name: "limited", Flow: []batch.Node{batch.NewTasklet("s", func(context.Context, bun.Tx, *batch.StepContext) (batch.RepeatStatus, error) {
		calls.Add(1)
		return batch.Finished, errors.New("still broken")
	}).StartLimit(2)}}
	b := setup(t, 0, job)
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "limited")
	for i := 0; i < 2; i++ {
		requireStatus(t, b.wait(t, id, time.Minute), batch.StatusFailed)
		next, err := b.engine.Restart(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		id = next.JobExecutionID
	}
	je := b.wait(t, id, time.Minute)
	if je.Status != batch.StatusFailed || !strings.Contains(je.ExitMessage, "start limit exceeded") || calls.Load() != 2 {
		t.Fatalf("third execution %s %q after %d calls; want FAILED by the start limit after 2", je.Status, je.ExitMessage, calls.Load())
	}
}

// TestPreventRestart: a job that prevents restarts refuses a restart and a
// relaunch of its failed instance; another instance runs.
func TestPreventRestart(t *testing.T) {
	t.Parallel()
	job := &batch.Job{Name: "once", PreventRestart: true, Flow: []batch.Node{failing("s")}}
	b := setup(t, 0, job)
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "once", "day=1")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusFailed)
	if _, err := b.engine.Restart(context.Background(), id); !errors.Is(err, batch.ErrNotRestartable) {
		t.Fatalf("restart: %v, want ErrNotRestartable", err)
	}
	p, _ := batch.ParseParams([]string{"day=1"})
	if _, err := b.engine.Launch(context.Background(), "once", p); !errors.Is(err, batch.ErrNotRestartable) {
		t.Fatalf("relaunch: %v, want ErrNotRestartable", err)
	}
	b.launch(t, "once", "day=2")
}

// TestLaunchNext: --next launches make run.id 1, 2, 3, each a new instance,
// stored as Spring Batch 5 stores a Long.
func TestLaunchNext(t *testing.T) {
	t.Parallel()
	b := setup(t, 0, &batch.Job{Name: "again", Flow: []batch.Node{batch.NewTasklet("s", func(context.Context, bun.Tx, *batch.StepContext) (batch.RepeatStatus, error) {
		return batch.Finished, nil
	})}})
	var ids []int64
	for i := 0; i < 3; i++ {
		je, err := b.engine.LaunchNext(context.Background(), "again", batch.Params{"note": {Value: "x", Identifying: true}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, je.JobExecutionID)
	}
	var got []string
	if err := b.db.NewRaw(`SELECT parameter_value || ':' || parameter_type || ':' || identifying FROM batch_job_execution_params
		WHERE parameter_name = 'run.id' ORDER BY job_execution_id`).Scan(context.Background(), &got); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "1:java.lang.Long:Y,2:java.lang.Long:Y,3:java.lang.Long:Y" {
		t.Fatalf("run.id params %v", got)
	}
	var instances int
	_ = b.db.NewRaw("SELECT count(DISTINCT job_instance_id) FROM batch_job_execution").Scan(context.Background(), &instances)
	if instances != 3 {
		t.Fatalf("%d instances, want 3", instances)
	}
	if _, err := b.engine.LaunchNext(context.Background(), "again", batch.Params{"run.id": {Value: "9", Identifying: true}}); !errors.Is(err, batch.ErrInvalidParams) {
		t.Fatalf("--next with run.id: %v", err)
	}
}

// TestDeclaredParameters: unknown keys, wrong types and missing required
// keys are refused before any instance exists; a good launch stores each
// parameter with its Java type, run.at as a java.util.Date in UTC.
func TestDeclaredParameters(t *testing.T) {
	t.Parallel()
	job := &batch.Job{Name: "typed", Parameters: []batch.ParamSpec{
		{Name: "day", Type: batch.TypeDate, Required: true, Description: "the day to process"},
		{Name: "limit", Type: batch.TypeLong},
		{Name: "rate", Type: batch.TypeDouble},
		{Name: "who", Type: batch.TypeString},
	}, Flow: []batch.Node{failing("s")}}
	b := setup(t, 0, job)
	ctx := context.Background()
	for args, want := range map[string]string{
		"day=2026-12-01T00:00:00Z bogus=1": `typed does not take "bogus" (known: day, limit, rate, who, run.at, run.id, partitions)`,
		"day=2026-12-01T00:00:00Z limit=x": "limit: want a whole number (long)",
		"day=yesterday":                    "day: want an RFC 3339 time (date)",
		"day=2026-12-01T00:00:00Z rate=hi": "rate: want a number (double)",
		"limit=3":                          "typed needs day (java.util.Date, the day to process)",
	} {
		p, _ := batch.ParseParams(strings.Fields(args))
		_, err := b.engine.Launch(ctx, "typed", p)
		if !errors.Is(err, batch.ErrInvalidParams) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrInvalidParams saying %q", args, err, want)
		}
	}
	var n int
	_ = b.db.NewRaw("SELECT count(*) FROM batch_job_instance").Scan(ctx, &n)
	if n != 0 {
		t.Fatalf("%d instances after refused launches", n)
	}
	p, _ := batch.ParseParams([]string{"day=2026-12-01T09:00:00+09:00", "limit=5", "-who=kim", "run.at=2026-12-01T10:00:00+09:00"})
	je, err := b.engine.Launch(ctx, "typed", p)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = b.db.NewRaw(`SELECT parameter_name || '=' || parameter_value || ':' || parameter_type || ':' || identifying FROM batch_job_execution_params
		WHERE job_execution_id = ? ORDER BY parameter_name`, je.JobExecutionID).Scan(ctx, &got)
	want := "day=2026-12-01T00:00:00Z:java.util.Date:Y,limit=5:java.lang.Long:Y,run.at=2026-12-01T01:00:00Z:java.util.Date:Y,who=kim:java.lang.String:N"
	if strings.Join(got, ",") != want {
		t.Fatalf("stored %v\nwant %s", got, want)
	}
}

// TestStopLoopingTasklet: a tasklet that returns Continuable sees the stop
// between calls and ends STOPPED with its context; the restart resumes
// from that context.
func TestStopLoopingTasklet(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	loop := batch.NewTasklet("loop", func(ctx context.Context, tx bun.Tx, sc *batch.StepContext) (batch.RepeatStatus, error) {
		calls.Add(1)
		var i int64
		switch v := sc.Context["i"].(type) {
		case json.Number: // as a saved context decodes
			i, _ = v.Int64()
		case int64: // as this delivery left it
			i = v
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO ran (job_execution_id, step) VALUES (?, ?)", sc.JobExecutionID, fmt.Sprint(i)); err != nil {
			return batch.Finished, err
		}
		sc.Context["i"] = i + 1
		time.Sleep(30 * time.Millisecond)
		if i+1 >= 40 {
			return batch.Finished, nil
		}
		return batch.Continuable, nil
	})
	b := setup(t, 0, &batch.Job{Name: "looping", Flow: []batch.Node{loop}})
	b.createRan(t)
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "looping")
	for calls.Load() < 5 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.engine.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusStopped)
	se := topStep(t, b.db, id, "loop")
	first := strings.Count(b.ranSteps(t, id), ",") + 1
	if se.Status != batch.StatusStopped || first >= 40 || int64(first) != se.CommitCount {
		t.Fatalf("loop %s after %d calls (%d commits), want STOPPED mid-way", se.Status, first, se.CommitCount)
	}
	next, err := b.engine.Restart(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, next.JobExecutionID, time.Minute), batch.StatusCompleted)
	all := b.ranSteps(t, id) + "," + b.ranSteps(t, next.JobExecutionID)
	var want []string
	for i := 0; i < 40; i++ {
		want = append(want, fmt.Sprint(i))
	}
	if all != strings.Join(want, ",") {
		t.Fatalf("iterations %s, want 0..39 once each", all)
	}
}

// TestPartitionStepNames: partitions are named as Spring Batch names them.
func TestPartitionStepNames(t *testing.T) {
	t.Parallel()
	b := setup(t, 1000, testjob.Jobs()...)
	b.startWorkers(t, 1, 4)
	id := b.launch(t, "inc")
	requireStatus(t, b.wait(t, id, time.Minute), batch.StatusCompleted)
	var names []string
	_ = b.db.NewRaw("SELECT step_name FROM batch_step_execution WHERE job_execution_id = ? AND parent_step_execution_id IS NOT NULL ORDER BY step_execution_id", id).Scan(context.Background(), &names)
	if strings.Join(names, ",") != "inc:partition0,inc:partition1,inc:partition2,inc:partition3,inc:partition4,inc:partition5,inc:partition6,inc:partition7" {
		t.Fatalf("partition names %v", names)
	}
	requireAllOnce(t, b.db, 1000)
}

// TestRecover: an execution whose worker process was SIGKILLed and whose
// Redis was flushed (nothing will ever run it, and no reconciler runs
// here) is recovered: the job, its step and its partitions FAILED with end
// times and the reason. A restart then finishes every row once. Recover
// refuses while a live worker holds the execution.
func TestRecover(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("multi-process test")
	}
	const rows = 5000
	ctx := context.Background()
	b := setup(t, rows, testjob.Jobs()...)
	victim := b.startProc(t, "victim", "WORKER_CONCURRENCY=4")
	id := b.launch(t, "inc", "-sleep_ms=2")
	b.waitCommits(t, id, 4)
	if err := b.engine.Recover(ctx, id, 3*time.Second); !errors.Is(err, batch.ErrInvalidTransition) || !strings.Contains(err.Error(), "live worker victim") {
		t.Fatalf("recover of a live execution: %v, want ErrInvalidTransition naming the worker", err)
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	if err := b.redis.Client.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // its last heartbeat is older than liveFor
	if err := b.engine.Recover(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	je := b.execution(t, id)
	if je.Status != batch.StatusFailed || je.ExitCode != batch.ExitFailed || je.EndTime == nil || !strings.Contains(je.ExitMessage, "recovered") {
		t.Fatalf("recovered execution %s %s %q end %v", je.Status, je.ExitCode, je.ExitMessage, je.EndTime)
	}
	var open, failed int
	_ = b.db.NewRaw(`SELECT count(*) FILTER (WHERE status IN ('STARTING', 'STARTED', 'STOPPING') OR end_time IS NULL),
		count(*) FILTER (WHERE status = 'FAILED' AND exit_message LIKE 'recovered%') FROM batch_step_execution WHERE job_execution_id = ?`, id).Scan(ctx, &open, &failed)
	if open != 0 || failed == 0 {
		t.Fatalf("after recover: %d step executions still open, %d failed by it", open, failed)
	}
	if err := b.engine.Recover(ctx, id, time.Second); !errors.Is(err, batch.ErrInvalidTransition) {
		t.Fatalf("second recover: %v", err)
	}
	next, err := b.engine.Restart(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	b.startWorkers(t, 1, 4)
	requireStatus(t, b.wait(t, next.JobExecutionID, time.Minute), batch.StatusCompleted)
	requireAllOnce(t, b.db, rows)
}

// TestStopAndRestartAfterFailure: a step routed to StopAndRestart on
// FAILED stops the job; the restart begins at the named step and does not
// run the failed one again. A StopAndRestart back to the stopping node or
// before it is refused when the job is registered (a restart would come
// back to the stop).
func TestStopAndRestartAfterFailure(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	x := batch.NewTasklet("x", func(context.Context, bun.Tx, *batch.StepContext) (batch.RepeatStatus, error) {
		calls.Add(1)
		return batch.Finished, errors.New("needs a person")
	}).On("FAILED", batch.StopAndRestart("g"))
	b := setup(t, 0, &batch.Job{Name: "handoff", Flow: []batch.Node{x, ranStep("g")}})
	b.createRan(t)
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "handoff")
	if je := b.wait(t, id, time.Minute); je.Status != batch.StatusStopped || !strings.Contains(je.ExitMessage, "a restart begins at g") {
		t.Fatalf("first execution %s %q, want STOPPED to restart at g", je.Status, je.ExitMessage)
	}
	next, err := b.engine.Restart(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, b.wait(t, next.JobExecutionID, time.Minute), batch.StatusCompleted)
	if got := b.ranSteps(t, next.JobExecutionID); got != "g" || calls.Load() != 1 {
		t.Fatalf("restart ran %q, x called %d times; want g alone and x once", got, calls.Load())
	}
	back := func() (err any) {
		defer func() { err = recover() }()
		batch.NewRegistry(&batch.Job{Name: "loop", Flow: []batch.Node{ranStep("a"), ranStep("b").On("*", batch.StopAndRestart("a"))}})
		return nil
	}()
	if !strings.Contains(fmt.Sprint(back), "does not come after it") {
		t.Fatalf("a backward StopAndRestart registered: %v", back)
	}
}

// TestLongKoreanFailureMessage: an exit message longer than the column
// allows is cut on a character boundary: cut by bytes, a Korean message
// split a character, Postgres refused it on every try and the step never
// ended.
func TestLongKoreanFailureMessage(t *testing.T) {
	t.Parallel()
	msg := strings.Repeat("결제 실패 ", 2000) // 14,000 bytes
	job := &batch.Job{Name: "korean", Flow: []batch.Node{batch.NewTasklet("s", func(context.Context, bun.Tx, *batch.StepContext) (batch.RepeatStatus, error) {
		return batch.Finished, errors.New(msg)
	})}}
	b := setup(t, 0, job)
	b.startWorkers(t, 1, 2)
	id := b.launch(t, "korean")
	je := b.wait(t, id, 30*time.Second)
	requireStatus(t, je, batch.StatusFailed)
	s := topStep(t, b.db, id, "s")
	if !utf8.ValidString(s.ExitMessage) || !strings.HasPrefix(msg, strings.TrimSuffix(s.ExitMessage, "...")) || len(s.ExitMessage) > 10000 {
		t.Fatalf("exit message of %d bytes is not the message cut on a character boundary", len(s.ExitMessage))
	}
}
