-- The trace an execution belongs to (W3C traceparent of its launch), so
-- work the reconciler re-drives joins the same trace (DESIGN §9).
ALTER TABLE batch_job_execution ADD COLUMN trace_context varchar(512);
