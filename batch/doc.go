// Package batch is passbatch's generic batch engine: Spring Batch's model (jobs,
// steps, chunks, partitions, a job repository in Postgres) executed on asynq
// task queues by any number of worker processes. It knows nothing of passes
// and imports no package of ours.
//
// # Model
//
// A Job is a flow of Nodes: a *Step, or a Split of parallel flows joined before
// the next node. A Step is a tasklet (called until it reports Finished; an
// IOTasklet calls out and runs outside any transaction) or a chunk step
// (reader → optional processor → optional Emit → writer, ChunkSize items at a
// time). A chunk step is always executed as partitions: its Partitioner
// returns key ranges, each range becomes a child step execution and an asynq
// task; a step without a Partitioner has one partition covering every key.
// At most AtOnce partitions of a step run at once, fleet-wide (the others
// wait their turn; each ending partition queues the next); a step of one
// partition runs in the worker that splits it. A reader whose key repeats
// (GroupedReader) keeps each key's items in one chunk, so a step
// partitioned by what its writer locks never has two chunks waiting on each
// other's row locks.
//
// # Tasks
//
//	batch:job        job:<je>:<gen>                 STARTING → STARTED, before-job listeners, first node
//	batch:step       step:<je>:<step>:<gen>.<sgen>  creates the step execution; runs a tasklet, or splits a chunk step
//	batch:partition  partition:<se>:<sgen>          runs one partition chunk by chunk until done, stopped, failed or handed back
//	batch:step-done  step-done:<se>:<gen>           aggregates a partitioned step once, then advances the flow
//
// Control tasks (job, step, step-done) go to QueueControl, partitions to
// QueuePartition; workers weigh control above partitions so that flows move
// while partitions are queued. A task ID names its work and its generation:
// gen is the job execution's (bumped by each re-drive of a stale execution),
// sgen the partition's or tasklet's (bumped by each re-drive or hand-back). A
// duplicate enqueue of the same work and generation is refused by asynq; a
// re-drive always uses a new generation, so it reaches the queue even where an
// archived task, or a dead worker's active one, still holds the old ID. A
// delivery of an older generation than its step execution's leaves at once.
//
// # Exactly-once
//
// Delivery is at-least-once. Effects are exactly-once because a delivery
// first claims its partition or tasklet (stamping its generation and worker,
// bumping the version) and every chunk then commits its domain writes, the
// reader checkpoint (step execution context), the counters and a
// version-fenced update of its step execution in ONE short Postgres
// transaction. On the common path that transaction holds one repository
// statement (fence, counters, checkpoint and, after the last chunk, the
// partition's end) beside the writer's; a chunk whose write fails with a
// skippable error is rolled back and written again item by item under
// savepoints, to isolate the bad ones. The chunk is read, processed and
// emitted before that
// transaction, outside any: a transaction holds no network call and no
// sleep. If the fence finds the version moved (another delivery claimed the
// partition, or a zombie wakes up), the chunk is discarded. The last chunk of
// a partition also increments its parent's barrier counter (partitions_done)
// in that transaction and enqueues the aggregation before it commits; the
// aggregation locks the parent first, flips its status under a status guard,
// so after-step and after-job listeners run once.
//
// # Errors
//
// Errors are classified where they arise: storage and notify return errors
// with a Retryable() bool method. For an error of a reader, processor, Emit,
// writer or tasklet the engine applies one order:
//
//  1. RetryPolicy    retryable (Retryable() true, or the policy's func)  retried in place, outside any transaction, with backoff
//  2. SkipPolicy     skippable, under the skip limit                     item skipped, recorded in batch_skipped_item
//  3. infrastructure Postgres connection lost or restarting, lock or     task back to asynq; resumes from the last checkpoint
//     statement timeout, deadlock, this process stopping
//  4. anything else  (a constraint, a 4xx, a missing file, …)            step FAILED with the reason; restartable
//
// A failed write rolls its chunk transaction back before the backoff, so no
// lock is held while waiting. A network error under an error its origin
// classified is not infrastructure: a webhook timeout gets the step's
// policy, not asynq's 25 retries.
//
// # Failover, drain and re-drive
//
// Workers (Worker) record a heartbeat in batch_worker every second, with
// the step executions their handlers are running (held). Liveness is that
// heartbeat, not the step row: a step held by a live worker is alive
// however long its phase runs outside a transaction (a merge of gigabytes,
// a slow webhook), and is never re-driven. The reconciler, run by every
// scheduler, re-drives within FailoverAfter (5s) the partitions and
// tasklets held by a worker whose heartbeat stopped — killed, frozen or
// cut off — under their next generation; Postgres ends a frozen worker's
// open transaction after idle_in_transaction_session_timeout and so
// releases its locks, and the zombie, thawed, finds its fence moved. In an
// execution that has not moved for StaleAfter it re-drives the work no live
// worker holds whose task is gone from Redis (archived after exhausting its
// retries, or lost with Redis): work waiting in a queue, however long, is
// left alone. After a Postgres outage workers get FailoverAfter to beat
// again before any is judged dead. Re-drives are counted per step
// execution; past RedriveLimit without progress the step ends FAILED with
// the last error (poison work ends) and a restart resumes from its
// checkpoint. Two schedulers take a stale execution once (SKIP LOCKED).
// Worker.Stop (SIGTERM) drains: no new tasks, each running partition or
// tasklet hands itself back at its next chunk boundary with its
// checkpoint, and the worker leaves.
//
// Work outside a transaction (an IOTasklet, a chunk's Emit) may run twice,
// one after the other or at once, when a fence is lost: it must never
// destroy its own input before its step commits, nor record less than it
// wrote (see the export's merge and remove-parts steps).
//
// # Repository size
//
// Purge deletes the instances whose executions all ended before a cutoff
// and whose last one is COMPLETED or ABANDONED (a FAILED or STOPPED one
// can still be restarted and is kept whole); executions carry their job
// name so that every list and gauge reads an index.
//
// # Flows and exit statuses
//
// A job's Flow is a list of nodes: steps, splits (parallel branches) and
// deciders. Each node ends with a status and an exit status (by default
// the same word; a tasklet sets StepContext.ExitStatus, an after-step
// listener se.ExitCode, see ExitStatus). Transitions route by the exit
// status: step.On("FAILED", To("recover")), On("*", Fail()), End(),
// EndWith(code), StopAndRestart(name); the most specific pattern wins (*
// and ? are wildcards). Without one, a COMPLETED node goes on to the next
// node that no transition targets and a FAILED or STOPPED node ends the job
// so. A Decider picks an exit status from the execution so far; its choice
// is recorded as a COMPLETED step execution named after it. The flow may
// not come back to a node. The job's exit status is the last node's, or
// the one EndWith names. Engine.FlowPath lists the transitions taken.
//
// # Restart, stop, abandon, recover
//
// Launching an instance whose last execution FAILED or STOPPED (or calling
// Restart) creates a new execution: steps COMPLETED in an earlier execution
// of the instance are skipped (unless AllowStartIfComplete, which runs them
// afresh: a partitioned one re-reads every row from new ranges, a tasklet
// starts with an empty context) and their exit statuses route the flow
// again; a partitioned step that did not complete reuses the earlier
// ranges, marks finished partitions COMPLETED and resumes the others from
// their checkpoint. A step with StartLimit(n) fails on its (n+1)th start;
// a job with PreventRestart refuses the restart (ErrNotRestartable). Stop
// sets STOPPING; partitions and tasklets (a Continuable one between calls)
// end STOPPED with their checkpoint or context kept. Abandon marks a
// STOPPED or FAILED execution ABANDONED, which is final for its instance
// (one abandoned while STOPPING runs its after-job listeners then).
// Recover marks a running execution nobody runs any more (its worker dead,
// its tasks gone) FAILED, steps and partitions too, so it can be restarted
// or abandoned; the reconciler would instead re-drive it.
//
// # Parameters
//
// Params are name → value, identifying or not; the identifying ones make the
// instance. A job that declares Parameters refuses unknown keys, values of
// the wrong type and missing required keys before anything is created.
// Values are stored as Spring Batch 5 stores them (parameter_type
// java.lang.String, java.lang.Long, java.lang.Double, java.util.Date; run.at
// is a date in UTC). LaunchNext adds run.id, one more than the job's last.
package batch
