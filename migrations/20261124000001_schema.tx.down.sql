DROP TABLE IF EXISTS export, batch_skipped_item, batch_step_execution_context, batch_step_execution,
    batch_job_execution_context, batch_job_execution_params, batch_job_execution, batch_job_instance,
    statistics, notification, booking, pass, bulk_pass, user_group_mapping, user_group, users, package;
