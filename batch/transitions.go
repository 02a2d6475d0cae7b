package batch

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
)

// Conditional flow (Spring Batch's on(...).to(...)/end()/fail()/
// stopAndRestart(...)): a node ends with an exit status, and its
// transitions choose what follows by matching it. A node without a
// matching transition follows the default: on COMPLETED the next node of
// the flow that no transition targets, otherwise the job ends FAILED or
// STOPPED as the node did.

// Target is where a transition goes; build one with To, End, EndWith, Fail
// or StopAndRestart.
type Target struct {
	kind targetKind
	name string // To, StopAndRestart: the node
	exit string // End: the job's exit status
}

type targetKind int

const (
	targetNode targetKind = iota + 1
	targetEnd
	targetFail
	targetStop
)

// To goes on to the node (step, split or decider) named name.
func To(name string) Target { return Target{kind: targetNode, name: name} }

// End ends the job COMPLETED, its exit status COMPLETED.
func End() Target { return Target{kind: targetEnd, exit: ExitCompleted} }

// EndWith ends the job COMPLETED with the given exit status.
func EndWith(exit string) Target { return Target{kind: targetEnd, exit: exit} }

// Fail ends the job FAILED (it can be restarted).
func Fail() Target { return Target{kind: targetFail} }

// StopAndRestart ends the job STOPPED; the next execution of the instance
// begins at the node named name, which must come after the stopping node
// in the flow (the nodes before it are not walked again).
func StopAndRestart(name string) Target { return Target{kind: targetStop, name: name} }

func (t Target) String() string {
	switch t.kind {
	case targetNode:
		return t.name
	case targetEnd:
		return "end(" + t.exit + ")"
	case targetFail:
		return "fail"
	case targetStop:
		return "stop-and-restart(" + t.name + ")"
	}
	return "?"
}

// flowRule is one on(pattern) rule of a node.
type flowRule struct {
	pattern string
	to      Target
}

// rules are a node's transitions; Step, Split and Decider embed them.
type rules struct{ on []flowRule }

func (r *rules) add(pattern string, to Target) {
	r.on = append(r.on, flowRule{pattern, to})
}

// match picks the transition for exit: the most specific matching pattern
// (fewest wildcards, then the longest; the first declared on a tie), as
// Spring Batch orders them.
func (r *rules) match(exit string) (flowRule, bool) {
	best, found := flowRule{}, false
	for _, t := range r.on {
		if matchExit(t.pattern, exit) && (!found || moreSpecific(t.pattern, best.pattern)) {
			best, found = t, true
		}
	}
	return best, found
}

// moreSpecific reports whether pattern a is more specific than b.
func moreSpecific(a, b string) bool {
	wa, wb := strings.Count(a, "*")+strings.Count(a, "?"), strings.Count(b, "*")+strings.Count(b, "?")
	if wa != wb {
		return wa < wb
	}
	return len(a) > len(b)
}

// matchExit matches an exit status against a pattern where * is any run of
// characters and ? is one character.
func matchExit(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if matchExit(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && matchExit(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && matchExit(pattern[1:], s[1:])
}

// On adds a transition: when the step ends with an exit status matching
// pattern (* and ? wildcards), the flow goes to to. It returns s.
func (s *Step) On(pattern string, to Target) *Step {
	s.rules.add(pattern, to)
	return s
}

// On adds a transition to the split, matched against its aggregate exit
// status (COMPLETED, or FAILED/STOPPED when a branch did). It returns s.
func (s *Split) On(pattern string, to Target) *Split {
	s.rules.add(pattern, to)
	return s
}

// Decision is a decider's choice of exit status from the execution so
// far: db reads the repository (or the domain), last is the step execution
// that ended before the decider (nil when it comes first).
type Decision func(ctx context.Context, db bun.IDB, je *JobExecution, last *StepExecution) (string, error)

// Decider is a flow node that runs no work: it chooses an exit status, and
// its transitions route the flow by it (Spring's JobExecutionDecider). Its
// choice is recorded as a step execution named after it (COMPLETED, exit
// code = the choice), so concurrent advances agree and the jobs page shows
// it; a restart decides again.
type Decider struct {
	rules
	name   string
	decide Decision
}

// NewDecider declares a decider node.
func NewDecider(name string, d Decision) *Decider { return &Decider{name: name, decide: d} }

// On adds a transition for one of the decider's choices. It returns d.
func (d *Decider) On(pattern string, to Target) *Decider {
	d.rules.add(pattern, to)
	return d
}

// Name returns the decider's name.
func (d *Decider) Name() string { return d.name }

func (d *Decider) nodeSteps() [][]*Step { return nil }
func (d *Decider) nodeName() string     { return d.name }
func (d *Decider) nodeRules() *rules    { return &d.rules }

func (s *Step) nodeName() string  { return s.name }
func (s *Step) nodeRules() *rules { return &s.rules }

func (s *Split) nodeName() string {
	if s.Name != "" {
		return s.Name
	}
	return "split:" + s.Flows[0][0].name
}
func (s *Split) nodeRules() *rules { return &s.rules }

// validateFlow checks the transitions: targets exist, and no path comes
// back to a node (a step runs at most once per execution).
func (j *Job) validateFlow() error {
	index := map[string]int{}
	for i, n := range j.Flow {
		if _, dup := index[n.nodeName()]; dup {
			return fmt.Errorf("batch: job %q: node %q declared twice", j.Name, n.nodeName())
		}
		index[n.nodeName()] = i
		if d, ok := n.(*Decider); ok && (d.decide == nil || len(d.on) == 0) {
			return fmt.Errorf("batch: job %q: decider %q needs a decision and transitions", j.Name, d.name)
		}
	}
	for i, n := range j.Flow {
		for _, t := range n.nodeRules().on {
			if t.to.kind != targetNode && t.to.kind != targetStop {
				continue
			}
			to, ok := index[t.to.name]
			if !ok {
				return fmt.Errorf("batch: job %q: %s on %q goes to unknown node %q", j.Name, n.nodeName(), t.pattern, t.to.name)
			}
			if t.to.kind == targetStop && to <= i {
				// A restart begins there and would come back to the stop.
				return fmt.Errorf("batch: job %q: %s on %q stops and restarts at %q, which does not come after it", j.Name, n.nodeName(), t.pattern, t.to.name)
			}
		}
	}
	// Depth-first search for a cycle over every edge a walk can take.
	state := make([]int, len(j.Flow)) // 0 new, 1 on the path, 2 done
	var visit func(i int) error
	visit = func(i int) error {
		if state[i] == 1 {
			return fmt.Errorf("batch: job %q: the flow comes back to %q; a node runs once per execution", j.Name, j.Flow[i].nodeName())
		}
		if state[i] == 2 {
			return nil
		}
		state[i] = 1
		for _, next := range j.successors(i, index) {
			if err := visit(next); err != nil {
				return err
			}
		}
		state[i] = 2
		return nil
	}
	for i := range j.Flow {
		if err := visit(i); err != nil {
			return err
		}
	}
	return nil
}

// successors lists the nodes a walk may go to from node i.
func (j *Job) successors(i int, index map[string]int) []int {
	var out []int
	if next := j.defaultNext(i); next >= 0 {
		out = append(out, next)
	}
	for _, t := range j.Flow[i].nodeRules().on {
		if t.to.kind == targetNode {
			out = append(out, index[t.to.name])
		}
	}
	return out
}

// stopsAndRestarts reports whether some transition is a StopAndRestart.
func (j *Job) stopsAndRestarts() bool {
	for _, n := range j.Flow {
		for _, t := range n.nodeRules().on {
			if t.to.kind == targetStop {
				return true
			}
		}
	}
	return false
}

// targeted reports whether a transition goes to the node named name: such
// a node is only reached that way, never as the default next.
func (j *Job) targeted(name string) bool {
	for _, n := range j.Flow {
		for _, t := range n.nodeRules().on {
			if (t.to.kind == targetNode || t.to.kind == targetStop) && t.to.name == name {
				return true
			}
		}
	}
	return false
}

// defaultNext is the node after i that no transition targets, or -1.
func (j *Job) defaultNext(i int) int {
	for k := i + 1; k < len(j.Flow); k++ {
		if !j.targeted(j.Flow[k].nodeName()) {
			return k
		}
	}
	return -1
}

// nodeIndex finds a node by name.
func (j *Job) nodeIndex(name string) int {
	for i, n := range j.Flow {
		if n.nodeName() == name {
			return i
		}
	}
	return -1
}
