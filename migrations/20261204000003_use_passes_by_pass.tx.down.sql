DROP INDEX batch_step_execution_waiting_idx;
ALTER TABLE batch_step_execution DROP COLUMN queued_at;
DROP INDEX booking_unused_pass_idx;
