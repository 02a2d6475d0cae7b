#!/usr/bin/env bash
# run-dev.sh — run the built api, two workers and the scheduler in the
# foreground, each output line prefixed with its process name. Ctrl-C (or
# SIGTERM) stops them all; if one exits on its own the rest are stopped too.
# The caller sets the environment (make dev does).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pids=()
names=()
start() { # start NAME ENV... -- CMD...
	local name=$1; shift
	local envs=()
	while [ "$1" != "--" ]; do envs+=("$1"); shift; done
	shift
	env "${envs[@]}" "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
	pids+=($!)
	names+=("$name")
}

stop_all() {
	trap - INT TERM
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for _ in $(seq 150); do
		local alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
}

trap 'echo "[dev] stopping"; stop_all; exit 0' INT TERM

start api LOG_FORMAT=text METRICS_ADDR=127.0.0.1:9100 -- bin/api
start worker-1 LOG_FORMAT=text METRICS_ADDR=127.0.0.1:9101 -- bin/worker
start worker-2 LOG_FORMAT=text METRICS_ADDR=127.0.0.1:9102 -- bin/worker
start scheduler LOG_FORMAT=text -- bin/scheduler
echo "[dev] api on ${HTTP_ADDR:-:8080}, workers' metrics on 127.0.0.1:9101 and :9102; Ctrl-C stops everything"
echo "[dev] admin token (Authorization: Bearer …): ${ADMIN_TOKEN:-unset}; the api's metrics on 127.0.0.1:9100/metrics"

while :; do
	for i in "${!pids[@]}"; do
		if ! kill -0 "${pids[$i]}" 2>/dev/null; then
			wait "${pids[$i]}"; rc=$?
			echo "[dev] ${names[$i]} exited with status $rc; stopping the others"
			stop_all
			exit 1
		fi
	done
	sleep 1
done
