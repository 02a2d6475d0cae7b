#!/usr/bin/env bash
# services.sh — private Postgres and Redis for `make dev`, `make test` and
# `make bench`, kept under .data/ of the repository.
#
#   scripts/services.sh start    create (first time) and start both; write .data/env
#   scripts/services.sh env      print .data/env
#   scripts/services.sh status   say what runs and where
#   scripts/services.sh stop     stop both
#   scripts/services.sh clean    stop both and delete .data
#
# A DATABASE_URL or REDIS_URL already in the environment is used as given and
# the matching private server is not started. Postgres refuses to run as root,
# so as root the cluster belongs to the `postgres` OS user; when that user
# cannot reach .data (a checkout in /root or any 0700 directory), the cluster
# lives in /var/tmp/passbatch-<hash of the checkout's path>/pg instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA="$ROOT/.data"
PGDIR="$DATA/pg"
RDIR="$DATA/redis"
if [ "$(id -u)" = 0 ] && [ ! -f "$PGDIR/data/PG_VERSION" ] && id postgres >/dev/null 2>&1 &&
	! runuser -u postgres -- test -x "$(dirname "$DATA")" 2>/dev/null; then
	PGDIR="/var/tmp/passbatch-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/pg"
fi
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
[ -n "$PGBIN" ] || PGBIN=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /usr/bin/pg_ctl)")

say() { echo "services: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }

as_pg() {
	if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

free_port() { # free_port START: the first free TCP port on 127.0.0.1 from START
	local p=$1
	while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
	echo "$p"
}

apt_install() {
	command -v apt-get >/dev/null || die "$1 is missing and apt-get is not available; install it or set the URL variable"
	[ "$(id -u)" = 0 ] || die "$1 is missing; install it (apt-get install $1) or run as root"
	say "installing $1 from OS packages"
	apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$1" >/dev/null
}

pg_running() { [ -f "$PGDIR/data/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; }

start_pg() {
	[ -x "$PGBIN/initdb" ] || apt_install postgresql
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
	mkdir -p "$PGDIR"
	if [ "$(id -u)" = 0 ]; then
		[ "$PGDIR" = "$DATA/pg" ] || say "the postgres user cannot reach $DATA; the cluster lives in $PGDIR"
		chown postgres: "$PGDIR"
		runuser -u postgres -- test -x "$PGDIR" ||
			die "the postgres user cannot reach $PGDIR; move the checkout to a directory others can traverse"
	fi
	if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
		say "creating a Postgres cluster in $PGDIR/data"
		as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 --locale=C >"$PGDIR/initdb.log" 2>&1 ||
			die "initdb failed; see $PGDIR/initdb.log"
		local port sock
		port=$(free_port 55432)
		echo "$port" >"$PGDIR/port"
		sock="$PGDIR/sock"
		mkdir -p "$sock"
		[ "$(id -u)" = 0 ] && chown postgres: "$sock"
		[ ${#sock} -le 90 ] || sock=""
		cat >>"$PGDIR/data/postgresql.conf" <<CONF
# passbatch dev/test settings: durability traded for speed (never in production)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 256MB
CONF
	fi
	# pg_stat_statements lets ptctl bench show where Postgres spends its time.
	if ! grep -q "^shared_preload_libraries = 'pg_stat_statements'" "$PGDIR/data/postgresql.conf"; then
		echo "shared_preload_libraries = 'pg_stat_statements'" >>"$PGDIR/data/postgresql.conf"
		if pg_running; then
			say "restarting Postgres to load pg_stat_statements"
			as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -m fast -w -t 60 restart >/dev/null
		fi
	fi
	local port
	port=$(cat "$PGDIR/port")
	if ! pg_running; then
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			die "port $port (from $PGDIR/port) is taken by another program"
		fi
		say "starting Postgres on 127.0.0.1:$port"
		as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 60 start >/dev/null ||
			die "Postgres did not start; see $PGDIR/log"
	fi
	for db in passbatch passbatch_test; do
		if ! psql -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
			psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE $db" >/dev/null
		fi
	done
	PG_URL_BASE="postgres://postgres@127.0.0.1:$port"
}

redis_running() {
	[ -f "$RDIR/port" ] && redis-cli -h 127.0.0.1 -p "$(cat "$RDIR/port")" ping 2>/dev/null | grep -q PONG
}

start_redis() {
	command -v redis-server >/dev/null || apt_install redis-server
	mkdir -p "$RDIR"
	[ -f "$RDIR/port" ] || free_port 56379 >"$RDIR/port"
	local port
	port=$(cat "$RDIR/port")
	if ! redis_running; then
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			free_port $((port + 1)) >"$RDIR/port"
			port=$(cat "$RDIR/port")
		fi
		# A port no one listens on may still be bound (the local end of an
		# outgoing connection): then try the next free one.
		for _ in $(seq 10); do
			say "starting Redis on 127.0.0.1:$port"
			: >"$RDIR/redis.log"
			redis-server --bind 127.0.0.1 --port "$port" --dir "$RDIR" --daemonize yes \
				--pidfile "$RDIR/redis.pid" --logfile "$RDIR/redis.log" \
				--databases 4096 --save '' --appendonly no >/dev/null
			for _ in $(seq 50); do redis_running && break; sleep 0.1; done
			redis_running && break
			grep -q "Address already in use" "$RDIR/redis.log" || break
			free_port $((port + 1)) >"$RDIR/port"
			port=$(cat "$RDIR/port")
		done
		redis_running || die "Redis did not start; see $RDIR/redis.log"
	fi
	REDIS_URL_BASE="redis://127.0.0.1:$port"
}

# dev_secrets makes the admin token and session secret of this checkout's
# `make dev` once, random, readable by the owner only.
dev_secrets() {
	local f="$DATA/secrets"
	if [ ! -s "$f" ]; then
		local tok sec
		tok=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
		sec=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
		(umask 077 && printf 'DEV_ADMIN_TOKEN=%s\nDEV_SESSION_SECRET=%s\n' "$tok" "$sec" >"$f")
		say "made a random admin token and session secret for make dev in $f"
	fi
	# shellcheck disable=SC1090
	. "$f"
}

start() {
	mkdir -p "$DATA"
	dev_secrets
	local db_url test_db_url redis_url test_redis_url
	if [ -n "${DATABASE_URL:-}" ]; then
		db_url=$DATABASE_URL
		test_db_url=${TEST_DATABASE_URL:-$DATABASE_URL}
	else
		start_pg
		db_url="$PG_URL_BASE/passbatch?sslmode=disable"
		test_db_url="$PG_URL_BASE/passbatch_test?sslmode=disable"
	fi
	if [ -n "${REDIS_URL:-}" ]; then
		redis_url=$REDIS_URL
		test_redis_url=${TEST_REDIS_URL:-$REDIS_URL}
	else
		start_redis
		redis_url="$REDIS_URL_BASE/0"
		test_redis_url="$REDIS_URL_BASE/1"
	fi
	(umask 077 && cat >"$DATA/env" <<ENV
export DATABASE_URL='$db_url'
export TEST_DATABASE_URL='$test_db_url'
export REDIS_URL='$redis_url'
export TEST_REDIS_URL='$test_redis_url'
export ADMIN_TOKEN="\${ADMIN_TOKEN:-$DEV_ADMIN_TOKEN}"
export SESSION_SECRET="\${SESSION_SECRET:-$DEV_SESSION_SECRET}"
ENV
)
	say "ready: Postgres ${db_url%%\?*}, Redis $redis_url (environment in .data/env)"
}

stop() {
	if [ -f "$RDIR/port" ] && redis_running; then
		redis-cli -h 127.0.0.1 -p "$(cat "$RDIR/port")" shutdown nosave >/dev/null 2>&1 || true
		say "stopped Redis"
	fi
	if pg_running; then
		as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null
		say "stopped Postgres"
	fi
}

status() {
	if pg_running; then echo "postgres: running on 127.0.0.1:$(cat "$PGDIR/port")"; else echo "postgres: stopped"; fi
	if redis_running; then echo "redis: running on 127.0.0.1:$(cat "$RDIR/port")"; else echo "redis: stopped"; fi
}

case "${1:-}" in
start) start ;;
env) cat "$DATA/env" ;;
status) status ;;
stop) stop ;;
clean)
	stop
	rm -rf "$DATA"
	say "removed $DATA"
	if [ "$PGDIR" != "$DATA/pg" ]; then rm -rf "$(dirname "$PGDIR")" && say "removed $(dirname "$PGDIR")"; fi
	;;
*) echo "usage: $0 start|env|status|stop|clean" >&2; exit 2 ;;
esac
