// Package batch is passbatch's generic batch engine: Spring Batch's model (jobs,
// steps, chunks, partitions, a job repository in Postgres) executed on asynq
// task queues by any number of worker processes. It knows nothing of passes.
//
// # Model
//
// A Job is a flow of Nodes: a *Step, or a Split of parallel flows joined before
// the next node. A Step is a tasklet (called until it reports Finished) or a
// chunk step (reader → optional processor → writer, ChunkSize items at a time).
// A chunk step is always executed as partitions: its Partitioner returns key
// ranges, each range becomes a child step execution and an asynq task; a step
// without a Partitioner has one partition covering every key.
//
// # Tasks
//
//	batch:job        payload {job_execution_id}           STARTING → STARTED, before-job listeners, first node
//	batch:step       payload {job_execution_id, step}     creates the step execution; runs a tasklet, or splits a chunk step
//	batch:partition  payload {step_execution_id}          runs one partition chunk by chunk until done, stopped or failed
//	batch:step-done  payload {step_execution_id}          aggregates a partitioned step once, then advances the flow
//
// Control tasks (job, step, step-done) go to QueueControl, partitions to
// QueuePartition; workers weigh control above partitions so that flows move
// while partitions are queued. Task IDs are derived from execution ids, so a
// duplicate enqueue of the same work is refused by asynq while the first is
// still in Redis, and is a harmless no-op after.
//
// # Exactly-once
//
// Delivery is at-least-once. Effects are exactly-once because every chunk
// commits its domain writes, the reader checkpoint (step execution context),
// the counters and a version-fenced update of its step execution in ONE
// Postgres transaction; the fence is taken first, so a duplicate delivery
// or a zombie worker blocks on the row lock and then finds the version moved.
// The last chunk of a partition also increments its parent's barrier counter
// (partitions_done) in that transaction: the worker that brings it to
// partitions_total enqueues the aggregation, and aggregation flips the parent's
// status under a status guard, so after-step and after-job listeners run once.
//
// # Restart, stop, abandon
//
// Launching an instance whose last execution FAILED or STOPPED (or calling
// Restart) creates a new execution: steps COMPLETED in an earlier execution
// of the instance are skipped; a partitioned step reuses the earlier ranges,
// marks finished partitions COMPLETED and resumes the others from their
// checkpoint. Stop sets STOPPING; partitions and tasklets check between chunks
// and end STOPPED with their checkpoint kept. Abandon marks a STOPPED or FAILED
// execution ABANDONED, which is final for its instance.
//
// # Losing Redis
//
// Postgres is the source of truth. The Reconciler finds running executions
// without progress for a while and re-enqueues what they need; with the
// deterministic task IDs this is harmless when the tasks still exist.
package batch
