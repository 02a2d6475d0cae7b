package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/uptrace/bun"
)

// flowState is where a running execution stands in its job's flow.
type flowState struct {
	toStart  []string // steps due now (the next node, or the next step of each split branch)
	running  bool     // some step is still running
	failures []string // why steps failed
	stopped  bool     // some step stopped or was abandoned
	decide   *Decider // a decider due now
	last     *StepExecution
	end      *flowEnd // set when a transition (or the flow's end) ends the job
	path     []string // the transitions taken, "a -[FAILED]-> recover"
}

// flowEnd is how a walk ends the job.
type flowEnd struct {
	status    Status
	exit, msg string
	restartAt string // StopAndRestart: the node a restart begins at
}

// outcome is how a node ended.
type outcome struct {
	status Status
	exit   string
	msg    string
}

// walkFlow reads the flow against the step executions so far, from node
// start (the first, or where an earlier execution's StopAndRestart said):
// a node that ended (now, or COMPLETED in an earlier execution of the
// instance) is routed by its exit status, through its matching transition
// or the default (COMPLETED: the next untargeted node; FAILED or STOPPED:
// the job ends so). The walk stops at the first node still to run or
// running. validateFlow keeps the flow free of cycles; a walk that visits
// more nodes than the flow has fails the job all the same.
func walkFlow(job *Job, steps map[string]*StepExecution, earlier map[string]*StepExecution, start int) flowState {
	var st flowState
	var routed []string // failures a transition handled, for a later Fail
	lastExit := ExitCompleted
	for i, visits := start, 0; i >= 0 && i < len(job.Flow); visits++ {
		if visits > len(job.Flow) {
			st.failures = append(st.failures, "the flow loops: a node was reached twice")
			return st
		}
		node := job.Flow[i]
		out, ok := nodeOutcome(node, steps, earlier, &st)
		if !ok {
			return st
		}
		lastExit = out.exit
		if t, ok := node.nodeRules().match(out.exit); ok {
			st.path = append(st.path, fmt.Sprintf("%s -[%s]-> %s", node.nodeName(), out.exit, t.to))
			if out.msg != "" {
				routed = append(routed, out.msg)
			}
			switch t.to.kind {
			case targetNode:
				i = job.nodeIndex(t.to.name)
				continue
			case targetEnd:
				st.end = &flowEnd{status: StatusCompleted, exit: t.to.exit}
			case targetFail:
				st.end = &flowEnd{status: StatusFailed, exit: ExitFailed, msg: strings.Join(append(routed,
					fmt.Sprintf("%s ended %s: the flow fails the job", node.nodeName(), out.exit)), "; ")}
			case targetStop:
				st.end = &flowEnd{status: StatusStopped, exit: ExitStopped, restartAt: t.to.name,
					msg: fmt.Sprintf("%s ended %s: stopped; a restart begins at %s", node.nodeName(), out.exit, t.to.name)}
			}
			return st
		}
		switch out.status {
		case StatusCompleted:
			i = job.defaultNext(i)
		case StatusFailed:
			st.failures = append(st.failures, out.msg)
			return st
		default:
			st.stopped = true
			return st
		}
	}
	st.end = &flowEnd{status: StatusCompleted, exit: lastExit}
	return st
}

// nodeOutcome says how node ended, or (false) records in st what it waits
// for: steps to start, running steps, a decision.
func nodeOutcome(node Node, steps, earlier map[string]*StepExecution, st *flowState) (outcome, bool) {
	switch n := node.(type) {
	case *Decider:
		se, ok := steps[n.name]
		if !ok {
			st.decide = n
			return outcome{}, false
		}
		st.last = se
		return outcome{status: StatusCompleted, exit: se.ExitCode}, true
	case *Step:
		return stepOutcome(n, steps, earlier, st)
	case *Split:
		return splitOutcome(n, steps, earlier, st)
	}
	return outcome{}, false
}

// stepOutcome is nodeOutcome for one step.
func stepOutcome(s *Step, steps, earlier map[string]*StepExecution, st *flowState) (outcome, bool) {
	if prev, ok := earlier[s.name]; ok && !s.allowStartIfComplete {
		st.last = prev
		return outcome{status: StatusCompleted, exit: prev.ExitCode}, true
	}
	se, ok := steps[s.name]
	switch {
	case !ok:
		st.toStart = append(st.toStart, s.name)
		return outcome{}, false
	case Running(se.Status):
		st.running = true
		return outcome{}, false
	}
	st.last = se
	out := outcome{status: se.Status, exit: se.ExitCode}
	if se.Status == StatusFailed {
		out.msg = fmt.Sprintf("step %s failed: %s", s.name, se.ExitMessage)
	}
	return out, true
}

// splitOutcome is nodeOutcome for a split: each branch runs its steps in
// order; the split has ended when no branch is running and either every
// branch completed or one failed or stopped (no further step starts then).
// Its exit status is FAILED, STOPPED or COMPLETED, in that order.
func splitOutcome(sp *Split, steps, earlier map[string]*StepExecution, st *flowState) (outcome, bool) {
	var due []string
	running, failed, stopped := false, []string(nil), false
	for _, flow := range sp.Flows {
		for _, s := range flow {
			var bs flowState
			out, ok := stepOutcome(s, steps, earlier, &bs)
			if !ok {
				due = append(due, bs.toStart...)
				running = running || bs.running
				break
			}
			if bs.last != nil {
				st.last = bs.last
			}
			if out.status == StatusFailed {
				failed = append(failed, out.msg)
				break
			}
			if out.status != StatusCompleted {
				stopped = true
				break
			}
		}
	}
	switch {
	case running:
		st.running = true
		st.failures = append(st.failures, failed...)
		st.stopped = st.stopped || stopped
		if len(failed) == 0 && !stopped {
			st.toStart = append(st.toStart, due...)
		}
		return outcome{}, false
	case len(failed) > 0:
		return outcome{status: StatusFailed, exit: ExitFailed, msg: strings.Join(failed, "; ")}, true
	case stopped:
		return outcome{status: StatusStopped, exit: ExitStopped}, true
	case len(due) > 0:
		st.toStart = append(st.toStart, due...)
		return outcome{}, false
	}
	return outcome{status: StatusCompleted, exit: ExitCompleted}, true
}

// advance moves a running execution along its flow. It is idempotent: it
// looks at what the repository says has run, enqueues the steps that should
// start now (task IDs make a repeat harmless) and ends the execution when
// nothing is left to run. Every handler calls it after its work, and so
// does the reconciler.
func (e *Engine) advance(ctx context.Context, jeID int64) error {
	return e.advanceFlow(ctx, jeID, false)
}

// advanceFlow is advance; with inline, a single chunk step due now is
// started right here (split, and run when it has one partition) instead of
// through a batch:step task: the job's first step costs no hop.
func (e *Engine) advanceFlow(ctx context.Context, jeID int64, inline bool) error {
	je, err := loadJobExecution(ctx, e.db, jeID)
	if err != nil {
		return err
	}
	if !Running(je.Status) {
		return nil
	}
	st, job, err := e.flowOf(ctx, e.db, je)
	if errors.Is(err, ErrUnknownJob) {
		return e.finishJob(ctx, jeID, StatusFailed, ExitFailed, err.Error())
	}
	if err != nil {
		return err
	}
	switch {
	case st.running:
		// Wait for the running steps; parallel flows of a split whose next
		// step is due still start, unless the job is stopping or failing.
		if je.Status == StatusStarted && len(st.failures) == 0 && !st.stopped {
			return e.startSteps(ctx, je, st.toStart)
		}
		return nil
	case len(st.failures) > 0:
		return e.finishJob(ctx, jeID, StatusFailed, ExitFailed, strings.Join(st.failures, "; "))
	case st.stopped || je.Status == StatusStopping:
		return e.finishJob(ctx, jeID, StatusStopped, ExitStopped, "stopped")
	case st.end != nil:
		if st.end.restartAt != "" {
			if err := e.saveRestartPoint(ctx, jeID, st.end.restartAt); err != nil {
				return err
			}
		}
		return e.finishJob(ctx, jeID, st.end.status, st.end.exit, st.end.msg)
	case je.Status == StatusStarting:
		return e.enqueueJob(ctx, je)
	case st.decide != nil:
		if err := e.decide(ctx, je, st.decide, st.last); err != nil {
			return err
		}
		return e.advance(ctx, jeID)
	default:
		if inline && len(st.toStart) == 1 {
			if step, ok := job.step(st.toStart[0]); ok && step.Partitioned() {
				ctx, span := tracer().Start(ctx, "batch.step", trace.WithAttributes(attribute.String("batch.step_name", step.name), attribute.Bool("batch.inline", true)))
				err := e.runStep(ctx, jeID, step.name, 0)
				endSpan(span, err)
				span.End()
				return err
			}
		}
		return e.startSteps(ctx, je, st.toStart)
	}
}

// flowOf walks je's flow against its step executions so far (see
// walkFlow). A job this process does not know is ErrUnknownJob.
func (e *Engine) flowOf(ctx context.Context, db bun.IDB, je *JobExecution) (flowState, *Job, error) {
	job, err := e.reg.Job(je.Instance.JobName)
	if err != nil {
		return flowState{}, nil, err
	}
	steps, err := topSteps(ctx, db, je.JobExecutionID)
	if err != nil {
		return flowState{}, nil, err
	}
	earlier, err := completedEarlier(ctx, db, je.JobInstanceID, je.JobExecutionID)
	if err != nil {
		return flowState{}, nil, err
	}
	start, err := e.restartPoint(ctx, db, job, je)
	if err != nil {
		return flowState{}, nil, err
	}
	return walkFlow(job, steps, earlier, start), job, nil
}

// restartKey holds, in a job execution's context, the node a StopAndRestart
// transition named for the next execution of the instance to begin at.
const restartKey = "batch.restart_at"

// saveRestartPoint records where the next execution begins.
func (e *Engine) saveRestartPoint(ctx context.Context, jeID int64, node string) error {
	if _, err := e.db.NewRaw(`UPDATE batch_job_execution_context SET short_context = (CASE WHEN short_context LIKE '{%' THEN short_context::jsonb ELSE '{}'::jsonb END || jsonb_build_object(?::text, ?::text))::text
		WHERE job_execution_id = ?`, restartKey, node, jeID).Exec(ctx); err != nil {
		return fmt.Errorf("record the restart point of execution %d: %w", jeID, err)
	}
	return nil
}

// restartPoint is the node an execution begins at: the one the latest
// earlier execution of its instance that stopped through StopAndRestart
// named, or the first.
func (e *Engine) restartPoint(ctx context.Context, db bun.IDB, job *Job, je *JobExecution) (int, error) {
	if !job.stopsAndRestarts() {
		return 0, nil
	}
	var at []string
	if err := db.NewRaw(`SELECT c.short_context::jsonb ->> ? FROM batch_job_execution_context c
		JOIN batch_job_execution e ON e.job_execution_id = c.job_execution_id
		WHERE e.job_instance_id = ? AND e.job_execution_id < ? AND c.short_context LIKE '{%' AND (c.short_context::jsonb ->> ?) IS NOT NULL
		ORDER BY e.job_execution_id DESC LIMIT 1`, restartKey, je.JobInstanceID, je.JobExecutionID, restartKey).Scan(ctx, &at); err != nil {
		return 0, fmt.Errorf("find the restart point of execution %d: %w", je.JobExecutionID, err)
	}
	if len(at) == 0 {
		return 0, nil
	}
	return max(job.nodeIndex(at[0]), 0), nil
}

// decide runs a decider and records its choice as a COMPLETED step
// execution named after it; the first recorded choice wins, so concurrent
// advances route the same way.
func (e *Engine) decide(ctx context.Context, je *JobExecution, d *Decider, last *StepExecution) error {
	exit, err := d.decide(ctx, e.db, je, last)
	if err != nil {
		return e.finishJob(ctx, je.JobExecutionID, StatusFailed, ExitFailed, fmt.Sprintf("decider %s: %v", d.name, err))
	}
	if exit == "" {
		exit = ExitCompleted
	}
	se := &StepExecution{StepName: d.name, JobExecutionID: je.JobExecutionID, Status: StatusCompleted, ExitCode: truncate(exit, 2500), ExitMessage: "decided"}
	if _, err := e.db.NewInsert().Model(se).Value("start_time", "clock_timestamp()").Value("end_time", "clock_timestamp()").
		On("CONFLICT (job_execution_id, step_name) WHERE parent_step_execution_id IS NULL DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("record decider %s: %w", d.name, err)
	}
	e.log.InfoContext(ctx, "decided", "job", je.Instance.JobName, "job_execution_id", je.JobExecutionID, "decider", d.name, "exit_status", exit)
	return nil
}

// FlowPath lists the transitions an execution's flow has taken so far,
// "load -[FAILED]-> recover" (Execution's Transitions hold the same).
func (e *Engine) FlowPath(ctx context.Context, jeID int64) ([]string, error) {
	je, err := loadJobExecution(ctx, e.db, jeID)
	if err != nil {
		return nil, err
	}
	steps, err := topSteps(ctx, e.db, jeID)
	if err != nil {
		return nil, err
	}
	return e.flowPath(ctx, je, steps)
}

// flowPath is FlowPath over the execution and top-level steps already
// loaded.
func (e *Engine) flowPath(ctx context.Context, je *JobExecution, steps map[string]*StepExecution) ([]string, error) {
	job, err := e.reg.Job(je.Instance.JobName)
	if err != nil {
		return nil, err
	}
	earlier, err := completedEarlier(ctx, e.db, je.JobInstanceID, je.JobExecutionID)
	if err != nil {
		return nil, err
	}
	start, err := e.restartPoint(ctx, e.db, job, je)
	if err != nil {
		return nil, err
	}
	return walkFlow(job, steps, earlier, start).path, nil
}

// startSteps enqueues the step tasks of steps, which have no execution yet.
func (e *Engine) startSteps(ctx context.Context, je *JobExecution, steps []string) error {
	for _, s := range steps {
		if err := e.enqueueStep(ctx, je.JobExecutionID, je.Generation, s, 0); err != nil {
			return err
		}
	}
	return nil
}

// finishJob ends a running execution once: the status guard lets one caller
// through, and the after-job listeners run in that caller's transaction;
// AfterJobCommitted listeners run after it commits.
func (e *Engine) finishJob(ctx context.Context, jeID int64, status Status, exit, msg string) error {
	var ended *JobExecution
	var job *Job
	var params Params
	err := e.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*JobExecution)(nil)).
			Set("status = ?", status).Set("exit_code = ?", truncate(exit, 2500)).Set("exit_message = ?", truncate(msg, 10000)).
			Set("end_time = clock_timestamp()").Set("start_time = coalesce(start_time, clock_timestamp())").
			Set("version = version + 1").Set("last_updated = clock_timestamp()").
			Where("job_execution_id = ? AND status IN (?, ?, ?)", jeID, StatusStarting, StatusStarted, StatusStopping).Exec(ctx)
		if err != nil {
			return fmt.Errorf("finish execution %d: %w", jeID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		if ended, err = loadJobExecution(ctx, tx, jeID); err != nil {
			return err
		}
		if job, err = e.reg.Job(ended.Instance.JobName); err != nil {
			job = nil
			return nil
		}
		if params, err = loadParams(ctx, tx, jeID); err != nil {
			return err
		}
		return runJobListeners(ctx, tx, job, true, ended, params)
	})
	if err != nil || ended == nil {
		return err
	}
	e.m.execution(ended.Instance.JobName, status)
	e.m.ended(ended.Instance.JobName, "", status, ended.StartTime, ended.EndTime)
	e.log.InfoContext(ctx, "job finished", "job", ended.Instance.JobName, "job_execution_id", jeID, "status", status, "exit_message", msg)
	if job != nil {
		for _, l := range job.Listeners {
			if l.AfterJobCommitted != nil {
				l.AfterJobCommitted(ctx, ended, params)
			}
		}
	}
	return nil
}

// truncate cuts s to at most n bytes, on a character boundary, marking
// the cut with "...": a cut inside a UTF-8 character would store an
// invalid string.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
