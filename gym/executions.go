package gym

import (
	"context"
	"fmt"
	"time"

	"github.com/passbatch/passbatch/batch"
)

// Launch starts job name with params p (see batch.Engine.Launch for the
// rules and their errors); next launches a new instance with the next
// run.id (batch.Engine.LaunchNext).
func (s *Service) Launch(ctx context.Context, name string, p batch.Params, next bool) (*batch.JobExecution, error) {
	if next {
		return s.Engine.LaunchNext(ctx, name, p)
	}
	return s.Engine.Launch(ctx, name, p)
}

// Control actions on an execution.
const (
	ActionStop    = "stop"
	ActionRestart = "restart"
	ActionAbandon = "abandon"
	ActionRecover = "recover"
)

// Control stops, restarts, abandons or recovers execution id and returns the
// execution the action leaves in charge: id itself, or the new execution
// of a restart. An unknown action is ErrNotFound; the engine's refusals
// (batch.ErrInvalidTransition, …) come back as they are.
func (s *Service) Control(ctx context.Context, id int64, action string) (int64, error) {
	switch action {
	case ActionStop:
		return id, s.Engine.Stop(ctx, id)
	case ActionAbandon:
		return id, s.Engine.Abandon(ctx, id)
	case ActionRecover:
		live := s.LiveFor
		if live <= 0 {
			live = 5 * time.Second
		}
		return id, s.Engine.Recover(ctx, id, live)
	case ActionRestart:
		je, err := s.Engine.Restart(ctx, id)
		if err != nil {
			return id, err
		}
		return je.JobExecutionID, nil
	}
	return id, notFound(fmt.Sprintf("action %q", action))
}
