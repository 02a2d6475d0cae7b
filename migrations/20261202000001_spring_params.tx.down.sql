UPDATE batch_step_execution SET step_name = regexp_replace(step_name, ':partition[0-9]+$', '')
    WHERE parent_step_execution_id IS NOT NULL;
UPDATE batch_job_execution_params SET parameter_type = 'STRING';
