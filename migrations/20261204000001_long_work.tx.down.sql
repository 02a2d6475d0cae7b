ALTER TABLE batch_step_execution DROP COLUMN redrive_count;
ALTER TABLE batch_worker DROP COLUMN held;
