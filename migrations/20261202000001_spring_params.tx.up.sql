-- Spring Batch 5 column contents (issue 17): parameter types are Java class
-- names, as Spring Batch 5's JobExplorer reads them; run.at is a date
-- (java.util.Date, an instant in UTC) and run.id / partitions are longs.
UPDATE batch_job_execution_params SET parameter_type = CASE
        WHEN parameter_name = 'run.at' THEN 'java.util.Date'
        WHEN parameter_name IN ('run.id', 'partitions') THEN 'java.lang.Long'
        ELSE 'java.lang.String' END
    WHERE parameter_type = 'STRING';

-- Partition step executions are named as Spring Batch's partitioner names
-- them: <step>:partition<i>, in the order they were created.
UPDATE batch_step_execution s SET step_name = s.step_name || ':partition' || p.i
    FROM (SELECT step_execution_id, row_number() OVER (PARTITION BY parent_step_execution_id ORDER BY step_execution_id) - 1 AS i
          FROM batch_step_execution WHERE parent_step_execution_id IS NOT NULL) p
    WHERE s.step_execution_id = p.step_execution_id AND s.step_name NOT LIKE '%:partition%';
