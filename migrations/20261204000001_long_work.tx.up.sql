-- Long work (DESIGN §10): liveness is the holder's heartbeat, and re-drives
-- are counted.

-- The step executions a worker's handlers are running right now, written
-- with each heartbeat: a step held by a live worker that lists it is alive
-- however long its phase takes, and is never re-driven.
ALTER TABLE batch_worker ADD COLUMN held bigint[] NOT NULL DEFAULT '{}';

-- Re-drives (failover or reconcile) since the step last made progress: past
-- REDRIVE_LIMIT the step ends FAILED instead of being re-driven again.
ALTER TABLE batch_step_execution ADD COLUMN redrive_count integer NOT NULL DEFAULT 0;
