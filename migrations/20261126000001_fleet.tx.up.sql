-- Running as a fleet (DESIGN §9): re-drive generations, partition ownership
-- and worker heartbeats.

-- A re-drive bumps generation; tasks carry it in their ID and payload, so a
-- re-drive reaches the queue even when an earlier task of the same work was
-- archived or is still held by a dead worker, and a delivery of an older
-- generation drops out.
ALTER TABLE batch_job_execution ADD COLUMN generation integer NOT NULL DEFAULT 0;
ALTER TABLE batch_step_execution ADD COLUMN generation integer NOT NULL DEFAULT 0;
-- The worker that claimed a running partition or tasklet (and, once it ended,
-- the one that ran it last).
ALTER TABLE batch_step_execution ADD COLUMN worker_id varchar(200);
CREATE INDEX batch_step_execution_held_idx ON batch_step_execution (worker_id)
    WHERE status IN ('STARTING', 'STARTED') AND worker_id IS NOT NULL;

-- One row per live worker process, heartbeat from the database clock. A
-- worker whose heartbeat is older than the failover threshold is dead: the
-- reconciler re-drives what it held.
CREATE TABLE batch_worker (
    worker_id    varchar(200) PRIMARY KEY,
    hostname     varchar(200) NOT NULL,
    pid          integer      NOT NULL,
    concurrency  integer      NOT NULL CHECK (concurrency > 0),
    state        varchar(10)  NOT NULL CHECK (state IN ('RUNNING', 'DRAINING')),
    started_at   timestamptz  NOT NULL DEFAULT now(),
    heartbeat_at timestamptz  NOT NULL DEFAULT now()
);
