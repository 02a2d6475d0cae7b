DROP TABLE IF EXISTS batch_worker;
DROP INDEX IF EXISTS batch_step_execution_held_idx;
ALTER TABLE batch_step_execution DROP COLUMN IF EXISTS worker_id;
ALTER TABLE batch_step_execution DROP COLUMN IF EXISTS generation;
ALTER TABLE batch_job_execution DROP COLUMN IF EXISTS generation;
