// Package chaos is passbatch's fault-injection suite (`make chaos`): real
// worker, scheduler and api processes, a private Postgres cluster and a private
// redis-server, use-passes over a seeded gym, and one fault per scenario —
// SIGKILL, rolling SIGTERM, Redis restarted empty, Postgres restarted,
// connections terminated, Postgres gone past the retry budget, a scheduler
// killed, a worker frozen, the Postgres primary moved to another host, a
// Redis Sentinel failover. Each scenario must end COMPLETED with no human
// action and every invariant holding; the report compares its duration with
// a run without the fault.
//
// `go test ./chaos/` (part of `make test`) runs the fast scenarios on a
// small gym; CHAOS_FULL=1 (what `make chaos` sets) runs every scenario over
// 200k bookings and writes results.md.
package chaos
