ALTER TABLE export DROP CONSTRAINT export_job_execution_id_fkey;
ALTER TABLE export ADD CONSTRAINT export_job_execution_id_fkey
    FOREIGN KEY (job_execution_id) REFERENCES batch_job_execution (job_execution_id);
DROP INDEX batch_step_execution_redrive_idx;
DROP INDEX batch_job_execution_final_idx;
DROP INDEX batch_job_execution_create_time_idx;
DROP INDEX batch_job_execution_status_idx;
DROP INDEX batch_job_execution_job_name_idx;
DROP TRIGGER batch_job_execution_job_name ON batch_job_execution;
DROP FUNCTION batch_job_execution_job_name();
ALTER TABLE batch_job_execution DROP COLUMN job_name;
