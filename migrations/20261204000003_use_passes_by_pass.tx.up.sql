-- use-passes reads the bookings still to deduct by (pass_id, id), a chunk
-- holding whole passes, and is partitioned by pass: its reads are ranges
-- of this index.
CREATE INDEX booking_unused_pass_idx ON booking (pass_id, id) WHERE status = 'COMPLETED' AND used_pass = false;

--bun:split

-- How many of a step's partitions run at once is the step's to say, fleet
-- wide: a partition waits its turn with queued_at NULL; each one that ends
-- queues the next in its last transaction.
ALTER TABLE batch_step_execution ADD COLUMN queued_at timestamptz;
UPDATE batch_step_execution SET queued_at = coalesce(start_time, create_time) WHERE parent_step_execution_id IS NOT NULL;
CREATE INDEX batch_step_execution_waiting_idx ON batch_step_execution (parent_step_execution_id, step_execution_id)
    WHERE queued_at IS NULL AND status IN ('STARTING', 'STARTED');
