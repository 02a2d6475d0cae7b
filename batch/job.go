package batch

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/uptrace/bun"
)

// Job declares a batch job: a flow of nodes run in order.
type Job struct {
	// Name identifies the job in the repository and the registry.
	Name string
	// Description is shown to operators.
	Description string
	// Flow is run in order; each element is a *Step, a *Split or a
	// *Decider. Transitions (Step.On…) route it by exit status; see To.
	Flow []Node
	// PreventRestart makes a FAILED or STOPPED execution final: a restart
	// or a launch of its instance returns ErrNotRestartable (Spring's
	// preventRestart()).
	PreventRestart bool
	// Parameters, when set, declares the job's parameters: a launch with
	// an unknown key, a value of the wrong type, or without a required
	// key returns ErrInvalidParams before any instance is created.
	// run.at, run.id and partitions are always known.
	Parameters []ParamSpec
	// Listeners run before and after every execution, once each.
	Listeners []JobListener
	// Prepare completes and checks parameters before an execution is created
	// (e.g. defaults run.at to now). Nil keeps them as given.
	Prepare func(p Params, now time.Time) (Params, error)
}

// Node is an element of a job's flow: a *Step, a *Split or a *Decider.
type Node interface {
	nodeSteps() [][]*Step
	nodeName() string
	nodeRules() *rules
}

// Split runs its flows in parallel; the job moves on when all have finished.
type Split struct {
	rules
	// Name names the split for transitions (To(name)); default
	// "split:" + its first step's name.
	Name string
	// Flows are sequences of steps; each runs its steps in order.
	Flows [][]*Step
}

func (s *Split) nodeSteps() [][]*Step { return s.Flows }
func (s *Step) nodeSteps() [][]*Step  { return [][]*Step{{s}} }

// RepeatStatus tells the engine whether a tasklet wants to be called again.
type RepeatStatus int

const (
	// Finished ends the tasklet step.
	Finished RepeatStatus = iota
	// Continuable calls the tasklet again in a new transaction.
	Continuable
)

// StepContext is what a tasklet or a chunk's reader, processor and writer
// see of the execution they run in.
type StepContext struct {
	// Params are the job execution's parameters.
	Params Params
	// JobExecutionID and StepExecutionID identify the running executions.
	JobExecutionID  int64
	StepExecutionID int64
	// JobName and StepName name them.
	JobName, StepName string
	// Range is the partition's key range (chunk steps).
	Range Range
	// ChunkStart is the first key the current chunk may read (chunk steps):
	// the partition's start, or one past its last committed key. A chunk
	// redone after a failure starts at the same key.
	ChunkStart int64
	// ChunkEnd is the last key the current chunk read, and ChunkItems how
	// many items it has to write. A writer given all ChunkItems items may
	// work on the key range [ChunkStart, ChunkEnd] with its reader's filter,
	// one set-based statement over a range instead of a list of ids; given
	// fewer (the engine isolating a bad item), it must write those alone.
	ChunkEnd   int64
	ChunkItems int
	// Context is the step execution context, saved with each transaction.
	// Chunk steps keep their checkpoint under the key "batch.last_key".
	Context map[string]any
	// Counts are added to the step execution by a tasklet's transaction;
	// a tasklet sets them to report what it did (chunk steps count themselves).
	Counts Counts
	// ExitStatus, set by a tasklet before it returns Finished, is the
	// step's exit status (default COMPLETED); transitions route by it.
	ExitStatus string

	sizer  Sizer // the engine's partition count; see Partitions
	fixed  bool  // the sizer is a fixed count (PARTITIONS=N): no cap
	atOnce int   // the step's partitions at once (caps an automatic count)
}

// Counts are item counters a tasklet reports for one call.
type Counts struct {
	Read, Write, Filter int64
}

// Tasklet is one-shot work. It runs in tx, which also commits the step's
// context and version; return Continuable to be called again. It must make
// no network call (use an IOTasklet).
type Tasklet func(ctx context.Context, tx bun.Tx, sc *StepContext) (RepeatStatus, error)

// IOTasklet is a tasklet that calls out (storage, a webhook). It runs
// outside any transaction, on db; the engine then commits its context and
// counts in a short fenced transaction. A delivery that loses the fence
// has still done its work, so the work must be idempotent.
type IOTasklet func(ctx context.Context, db bun.IDB, sc *StepContext) (RepeatStatus, error)

// Step is one step of a job. Build it with NewTasklet or NewChunk.
type Step struct {
	rules
	name      string
	tasklet   Tasklet
	ioTasklet IOTasklet
	chunk     chunkRunner
	part      Partitioner
	skip      SkipPolicy
	retry     RetryPolicy
	listeners []StepListener
	onSkip    func(ctx context.Context, tx bun.Tx, sc *StepContext, skipped []SkippedItem) error

	allowStartIfComplete bool
	startLimit           int
	atOnce               int // partitions at once (ChunkStep.AtOnce); 0: the engine's
}

// AllowStartIfComplete makes the step run again when its instance is
// restarted, even though it completed in an earlier execution (a cleanup,
// a recount). It returns s.
func (s *Step) AllowStartIfComplete() *Step {
	s.allowStartIfComplete = true
	return s
}

// StartLimit lets the step start at most n times across its instance's
// executions; the next start fails the step (and the job) with the
// reason. 0, the default, is no limit. It returns s.
func (s *Step) StartLimit(n int) *Step {
	s.startLimit = n
	return s
}

// Name returns the step's name.
func (s *Step) Name() string { return s.name }

// isTasklet reports whether the step is a tasklet of either kind.
func (s *Step) isTasklet() bool { return s.tasklet != nil || s.ioTasklet != nil }

// Partitioned reports whether the step runs as partition tasks.
func (s *Step) Partitioned() bool { return s.chunk != nil }

// WithRetry sets a tasklet's RetryPolicy (chunk steps take theirs in
// ChunkStep) and returns s: a failed call is rolled back and, when the
// policy retries its error, called again after the backoff.
func (s *Step) WithRetry(p RetryPolicy) *Step {
	s.retry = p
	return s
}

// WithListeners adds step listeners and returns s.
func (s *Step) WithListeners(ls ...StepListener) *Step {
	s.listeners = append(s.listeners, ls...)
	return s
}

// NewTasklet declares a tasklet step.
func NewTasklet(name string, t Tasklet) *Step {
	return &Step{name: name, tasklet: t}
}

// NewIOTasklet declares a tasklet step that calls out; see IOTasklet.
func NewIOTasklet(name string, t IOTasklet) *Step {
	return &Step{name: name, ioTasklet: t}
}

// Registry maps job names to their definitions. Worker, scheduler, API and
// CLI build the same one.
type Registry struct {
	jobs map[string]*Job
}

// NewRegistry returns a registry holding jobs; it panics on a duplicate or
// malformed definition, which is a programming error.
func NewRegistry(jobs ...*Job) *Registry {
	r := &Registry{jobs: map[string]*Job{}}
	for _, j := range jobs {
		r.Add(j)
	}
	return r
}

// Add registers j; it panics on a duplicate or malformed definition.
func (r *Registry) Add(j *Job) {
	if err := j.validate(); err != nil {
		panic(err)
	}
	if _, dup := r.jobs[j.Name]; dup {
		panic(fmt.Sprintf("batch: job %q registered twice", j.Name))
	}
	r.jobs[j.Name] = j
}

// Job returns the job named name, or ErrUnknownJob.
func (r *Registry) Job(name string) (*Job, error) {
	j, ok := r.jobs[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownJob, name, r.Names())
	}
	return j, nil
}

// Names lists the registered job names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.jobs))
	for n := range r.jobs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (j *Job) validate() error {
	if j.Name == "" || len(j.Name) > 100 {
		return fmt.Errorf("batch: job name %q must be 1 to 100 characters", j.Name)
	}
	if len(j.Flow) == 0 {
		return fmt.Errorf("batch: job %q has no steps", j.Name)
	}
	for _, n := range j.Flow {
		if sp, ok := n.(*Split); ok && (len(sp.Flows) == 0 || len(sp.Flows[0]) == 0) {
			return fmt.Errorf("batch: job %q has an empty split", j.Name)
		}
	}
	if err := j.validateParams(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, n := range j.Flow {
		for _, flow := range n.nodeSteps() {
			if len(flow) == 0 {
				return fmt.Errorf("batch: job %q has an empty flow in a split", j.Name)
			}
			for _, s := range flow {
				if s.name == "" || len(s.name) > 100 {
					return fmt.Errorf("batch: job %q: step name %q must be 1 to 100 characters", j.Name, s.name)
				}
				if seen[s.name] {
					return fmt.Errorf("batch: job %q: step %q declared twice", j.Name, s.name)
				}
				seen[s.name] = true
			}
		}
		if d, ok := n.(*Decider); ok {
			if d.name == "" || len(d.name) > 100 || seen[d.name] {
				return fmt.Errorf("batch: job %q: decider name %q must be 1 to 100 characters and unique", j.Name, d.name)
			}
			seen[d.name] = true
		}
	}
	return j.validateFlow()
}

// step finds a step by name.
func (j *Job) step(name string) (*Step, bool) {
	for _, n := range j.Flow {
		for _, flow := range n.nodeSteps() {
			for _, s := range flow {
				if s.name == name {
					return s, true
				}
			}
		}
	}
	return nil, false
}

// StepNames lists every step of the job in flow order.
func (j *Job) StepNames() []string {
	var out []string
	for _, n := range j.Flow {
		for _, flow := range n.nodeSteps() {
			for _, s := range flow {
				out = append(out, s.name)
			}
		}
	}
	return out
}
