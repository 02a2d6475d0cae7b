package gym

import (
	"context"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/tasks"
)

// Job is a job as operators see it: what it does, when it runs, its steps
// and its last execution.
type Job struct {
	Name        string                  `json:"name"`
	Description string                  `json:"description"`
	Schedule    string                  `json:"schedule"`
	Steps       []string                `json:"steps"`
	Last        *batch.ExecutionSummary `json:"last_execution"`
}

// Jobs lists the registered jobs with their cron (from schedule) and last
// execution.
func (s *Service) Jobs(ctx context.Context, schedule []tasks.Entry) ([]Job, error) {
	last, err := s.Engine.LastExecutions(ctx)
	if err != nil {
		return nil, err
	}
	cron := map[string]string{}
	for _, e := range schedule {
		cron[e.Job] = e.Cron
	}
	var out []Job
	for _, name := range s.Engine.Registry().Names() {
		j, _ := s.Engine.Registry().Job(name)
		v := Job{Name: name, Description: j.Description, Schedule: cron[name], Steps: j.StepNames()}
		if l, ok := last[name]; ok {
			v.Last = &l
		}
		out = append(out, v)
	}
	return out, nil
}
