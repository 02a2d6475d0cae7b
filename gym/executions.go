package gym

import (
	"context"
	"fmt"

	"github.com/passbatch/passbatch/batch"
)

// Launch starts job name with params p (see batch.Engine.Launch for the
// rules and their errors).
func (s *Service) Launch(ctx context.Context, name string, p batch.Params) (*batch.JobExecution, error) {
	return s.Engine.Launch(ctx, name, p)
}

// Control actions on an execution.
const (
	ActionStop    = "stop"
	ActionRestart = "restart"
	ActionAbandon = "abandon"
)

// Control stops, restarts or abandons execution id and returns the
// execution the action leaves in charge: id itself, or the new execution
// of a restart. An unknown action is ErrNotFound; the engine's refusals
// (batch.ErrInvalidTransition, …) come back as they are.
func (s *Service) Control(ctx context.Context, id int64, action string) (int64, error) {
	switch action {
	case ActionStop:
		return id, s.Engine.Stop(ctx, id)
	case ActionAbandon:
		return id, s.Engine.Abandon(ctx, id)
	case ActionRestart:
		je, err := s.Engine.Restart(ctx, id)
		if err != nil {
			return id, err
		}
		return je.JobExecutionID, nil
	}
	return id, notFound(fmt.Sprintf("action %q", action))
}
