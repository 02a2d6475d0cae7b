-- A job repository that stays small and fast (DESIGN §10): every page,
-- list and metric reads through an index, and finished executions can be
-- purged.

-- The job's name on each execution (our addition; Spring keeps it on the
-- instance only): "the last n executions of job X" is then an index scan
-- however many instances the job has (a per-minute job makes one a minute).
-- A trigger fills it from the instance, so every writer, a Spring Batch
-- tool included, keeps it right.
ALTER TABLE batch_job_execution ADD COLUMN job_name varchar(100);
UPDATE batch_job_execution e SET job_name = i.job_name FROM batch_job_instance i WHERE i.job_instance_id = e.job_instance_id;
ALTER TABLE batch_job_execution ALTER COLUMN job_name SET NOT NULL;

CREATE FUNCTION batch_job_execution_job_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT job_name INTO NEW.job_name FROM batch_job_instance WHERE job_instance_id = NEW.job_instance_id;
    RETURN NEW;
END $$;
CREATE TRIGGER batch_job_execution_job_name BEFORE INSERT ON batch_job_execution
    FOR EACH ROW EXECUTE FUNCTION batch_job_execution_job_name();

-- the jobs page and the API lists: newest executions of a job, by status,
-- by creation time.
CREATE INDEX batch_job_execution_job_name_idx ON batch_job_execution (job_name, job_execution_id);
CREATE INDEX batch_job_execution_status_idx ON batch_job_execution (status, job_execution_id);
CREATE INDEX batch_job_execution_create_time_idx ON batch_job_execution (create_time);
-- the purge: final executions by end time.
CREATE INDEX batch_job_execution_final_idx ON batch_job_execution (end_time)
    WHERE status IN ('COMPLETED', 'ABANDONED');
-- the poison-work metric: steps failed at the re-drive limit.
CREATE INDEX batch_step_execution_redrive_idx ON batch_step_execution (end_time)
    WHERE status = 'FAILED' AND redrive_count > 0;

-- A purged execution leaves its export (the file and the row) alone.
ALTER TABLE export DROP CONSTRAINT export_job_execution_id_fkey;
ALTER TABLE export ADD CONSTRAINT export_job_execution_id_fkey
    FOREIGN KEY (job_execution_id) REFERENCES batch_job_execution (job_execution_id) ON DELETE SET NULL;
