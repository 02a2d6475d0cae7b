ALTER TABLE batch_job_execution DROP COLUMN trace_context;
