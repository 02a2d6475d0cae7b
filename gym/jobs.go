package gym

import (
	"context"
	"time"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/tasks"
)

// Job is a job as operators see it: what it does, when it runs, its steps
// and its last execution.
type Job struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Schedule    string `json:"schedule"`
	// NextTick is the next time the scheduler fires the job, and
	// RegisteredBy the scheduler that registered its cron.
	NextTick     *time.Time              `json:"next_tick,omitempty"`
	RegisteredBy string                  `json:"registered_by,omitempty"`
	Steps        []string                `json:"steps"`
	Last         *batch.ExecutionSummary `json:"last_execution"`
	// Recent are the last RecentRuns executions, oldest first.
	Recent []batch.RunPoint `json:"recent,omitempty"`
}

// RecentRuns is how many past executions Jobs returns per job.
const RecentRuns = 20

// Jobs lists the registered jobs with the cron a scheduler registered for
// them (none: not scheduled) and their last execution.
func (s *Service) Jobs(ctx context.Context) ([]Job, error) {
	last, err := s.Engine.LastExecutions(ctx)
	if err != nil {
		return nil, err
	}
	reg, err := tasks.Registrations(ctx, s.DB, s.now())
	if err != nil {
		return nil, err
	}
	recent, err := s.Engine.RecentRuns(ctx, RecentRuns)
	if err != nil {
		return nil, err
	}
	var out []Job
	for _, name := range s.Engine.Registry().Names() {
		j, _ := s.Engine.Registry().Job(name)
		r := reg[name]
		v := Job{Name: name, Description: j.Description, Schedule: r.Cron, NextTick: r.Next, RegisteredBy: r.RegisteredBy, Steps: j.StepNames(),
			Recent: recent[name]}
		if l, ok := last[name]; ok {
			v.Last = &l
		}
		out = append(out, v)
	}
	return out, nil
}
