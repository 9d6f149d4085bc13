#!/usr/bin/env bash
# The project's one test command: `scripts/test.sh [extra cargo test arguments]`.
#
# The tests need a real PostgreSQL server. If PSN_TEST_DATABASE_URL is set, it is used as is
# (an admin URL; each test creates and drops its own throwaway database through it).
# Otherwise this script starts a throwaway cluster just for this run:
#
#   * initdb/pg_ctl from PATH or /usr/lib/postgresql/*/bin (highest version wins; override
#     with PSN_TEST_PG_BINDIR). Missing and running as root: `apt-get install postgresql`.
#     Missing and not root: says what to install and exits 1.
#   * trust auth, user postgres, 127.0.0.1 only, a free port from 55432 upward, the unix
#     socket in the temporary directory, fsync off, max_connections 200, time zone UTC.
#   * as root (initdb refuses to run as root) the cluster belongs to the `postgres` user,
#     which is created if missing.
#   * stopped and deleted when the script exits, whatever the outcome.
#
# The media tests need an S3-compatible server. If PSN_TEST_S3_URL is set, it is used as is.
# Otherwise this script runs moto in server mode on a free loopback port (55700 upward) for the
# run: installed with pip into a virtualenv under ${XDG_CACHE_HOME:-~/.cache}/psn-test/moto
# (override with PSN_TEST_S3_VENV); as root without python3-venv, `apt-get install
# python3-venv` first. Stopped when the script exits.
#
# Then runs `cargo test --workspace --locked "$@"` and exits with cargo's exit code
# (`scripts/test.sh -p psn-domain` tests just that package).

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

FIRST_PORT=55432
PORT_TRIES=50
READY_TRIES=60 # half a second apart

log() { printf 'test.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

# --- finding the server binaries ------------------------------------------------------------

pg_version_of() { # bindir -> "15.20"
	"$1/initdb" --version 2>/dev/null | awk '{ print $3 }'
}

find_pg_bindir() { # prints the bin directory of the highest installed version
	local dir initdb candidates=()
	if initdb=$(command -v initdb 2>/dev/null); then
		candidates+=("$(dirname "$(readlink -f "$initdb")")")
	fi
	for dir in /usr/lib/postgresql/*/bin; do
		[[ -d $dir ]] && candidates+=("$dir")
	done
	for dir in "${candidates[@]}"; do
		[[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]] || continue
		printf '%s\t%s\n' "$(pg_version_of "$dir")" "$dir"
	done | sort -t $'\t' -k1,1V | tail -n 1 | cut -f 2 | grep .
}

# --- the throwaway cluster ------------------------------------------------------------------

PG_TMP=""
PG_BINDIR=""
PG_DATA=""
PG_PORT=""
AS_ROOT=false

as_pg() { # run a server command as the cluster owner, from a directory it can read
	if $AS_ROOT; then
		(cd "$PG_TMP" && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

S3_PID=""
S3_LOG=""

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	local status=$?
	set +e
	if [[ -n $S3_PID ]]; then
		kill "$S3_PID" 2>/dev/null
		wait "$S3_PID" 2>/dev/null
	fi
	if [[ -n $S3_LOG ]]; then
		rm -f "$S3_LOG"
	fi
	if [[ -n $PG_TMP && -d $PG_TMP ]]; then
		if [[ $status -ne 0 && -n ${CI:-} && -s $PG_TMP/postgres.log ]]; then
			log "last lines of the PostgreSQL server log:"
			tail -n 40 "$PG_TMP/postgres.log" >&2
		fi
		if [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]]; then
			as_pg "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1
			if [[ -f $PG_DATA/postmaster.pid ]]; then
				# pg_ctl could not stop it: end the postmaster we started, by its pid.
				local pid
				pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null)
				[[ $pid =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null
			fi
		fi
		rm -rf "$PG_TMP"
	fi
	exit "$status"
}

install_postgresql() {
	log "no PostgreSQL server binaries found; installing the postgresql package (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2 || die "apt-get update failed"
	apt-get install -y -q --no-install-recommends postgresql >&2 ||
		die "apt-get install postgresql failed"
}

ensure_postgres_user() {
	if ! id -u postgres >/dev/null 2>&1; then
		log "creating the system user postgres to own the throwaway cluster"
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin postgres ||
			die "could not create the postgres user"
	fi
}

port_in_use() {
	# A successful connect means something listens there already.
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_cluster() {
	if [[ -n ${PSN_TEST_PG_BINDIR:-} ]]; then
		[[ -x $PSN_TEST_PG_BINDIR/initdb && -x $PSN_TEST_PG_BINDIR/pg_ctl ]] ||
			die "PSN_TEST_PG_BINDIR=$PSN_TEST_PG_BINDIR has no initdb and pg_ctl"
		PG_BINDIR=$PSN_TEST_PG_BINDIR
	elif ! PG_BINDIR=$(find_pg_bindir); then
		if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
			install_postgresql
			PG_BINDIR=$(find_pg_bindir) || die "installed postgresql but still found no initdb/pg_ctl"
		else
			log "no PostgreSQL server binaries (initdb, pg_ctl) in PATH or /usr/lib/postgresql/*/bin."
			log "Either install them:   sudo apt-get install postgresql"
			log "or use a server you already have (an admin URL; tests create their own databases):"
			log "  PSN_TEST_DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/postgres scripts/test.sh"
			exit 1
		fi
	fi

	if [[ $EUID -eq 0 ]]; then
		AS_ROOT=true
		ensure_postgres_user
		# The cluster owner must be able to reach the directory, so stay out of root's TMPDIR.
		PG_TMP=$(mktemp -d /tmp/psn-test-pg.XXXXXX)
		chown postgres: "$PG_TMP"
	else
		PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/psn-test-pg.XXXXXX")
	fi
	chmod 700 "$PG_TMP"
	PG_DATA=$PG_TMP/data

	if ! as_pg "$PG_BINDIR/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C \
		--no-sync >"$PG_TMP/initdb.log" 2>&1; then
		cat "$PG_TMP/initdb.log" >&2
		die "initdb failed"
	fi
	cat >>"$PG_DATA/postgresql.conf" <<-EOF

		# scripts/test.sh: a throwaway cluster for tests.
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$PG_TMP'
		max_connections = 200
		fsync = off
		synchronous_commit = off
		full_page_writes = off
		timezone = 'UTC'
		log_timezone = 'UTC'
	EOF

	local port=$FIRST_PORT tries=0
	while ((tries < PORT_TRIES)); do
		tries=$((tries + 1))
		if port_in_use "$port"; then
			port=$((port + 1))
			continue
		fi
		rm -f "$PG_TMP/postgres.log"
		if as_pg "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -l "$PG_TMP/postgres.log" -o "-p $port" \
			-w -t 60 start >"$PG_TMP/pg_ctl.log" 2>&1; then
			PG_PORT=$port
			break
		fi
		if grep -qiE 'could not (bind|create any TCP/IP)|address already in use' \
			"$PG_TMP/postgres.log"; then
			port=$((port + 1)) # lost a race for the port; try the next one
			continue
		fi
		cat "$PG_TMP/pg_ctl.log" "$PG_TMP/postgres.log" >&2
		die "could not start the throwaway PostgreSQL server"
	done
	[[ -n $PG_PORT ]] || die "no free port between $FIRST_PORT and $((FIRST_PORT + PORT_TRIES - 1))"

	local pg_isready=$PG_BINDIR/pg_isready
	[[ -x $pg_isready ]] || pg_isready=$(command -v pg_isready || true)
	if [[ -n $pg_isready ]]; then
		local i
		for ((i = 1; ; i++)); do
			"$pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres && break
			((i < READY_TRIES)) || {
				cat "$PG_TMP/postgres.log" >&2
				die "the throwaway PostgreSQL server did not become ready"
			}
			sleep 0.5
		done
	fi
}

# --- the S3-compatible server (moto) -------------------------------------------------------

S3_VENV=${PSN_TEST_S3_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/psn-test/moto}
S3_FIRST_PORT=55700

ensure_moto() {
	[[ -x $S3_VENV/bin/moto_server ]] && return 0
	if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
		if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
			log "python3 venv support is missing; installing python3-venv (apt-get)"
			export DEBIAN_FRONTEND=noninteractive
			apt-get update -q >&2 || die "apt-get update failed"
			apt-get install -y -q --no-install-recommends python3-venv >&2 ||
				die "apt-get install python3-venv failed"
		else
			die "the S3 tests need python3 with venv (sudo apt-get install python3-venv), or set PSN_TEST_S3_URL"
		fi
	fi
	log "installing moto (an S3-compatible test server) into $S3_VENV"
	rm -rf "$S3_VENV"
	python3 -m venv "$S3_VENV" >&2 || die "python3 -m venv $S3_VENV failed"
	"$S3_VENV/bin/pip" install -q 'moto[server]>=5,<6' >&2 || die "pip install moto[server] failed"
}

start_s3() {
	ensure_moto
	local port=$S3_FIRST_PORT tries=0 i
	while port_in_use "$port"; do
		port=$((port + 1))
		tries=$((tries + 1))
		((tries < PORT_TRIES)) || die "no free port for the S3 server from $S3_FIRST_PORT"
	done
	S3_LOG=$(mktemp "${TMPDIR:-/tmp}/psn-test-s3.XXXXXX")
	"$S3_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$S3_LOG" 2>&1 &
	S3_PID=$!
	for ((i = 1; ; i++)); do
		port_in_use "$port" && break
		if ! kill -0 "$S3_PID" 2>/dev/null; then
			cat "$S3_LOG" >&2
			die "the S3 server (moto) exited at start"
		fi
		((i < READY_TRIES)) || {
			cat "$S3_LOG" >&2
			die "the S3 server (moto) did not start listening on port $port"
		}
		sleep 0.5
	done
	export PSN_TEST_S3_URL="http://127.0.0.1:$port"
}

# --- main -----------------------------------------------------------------------------------

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n ${PSN_TEST_DATABASE_URL:-} ]]; then
	# Never print a password.
	shown=$(printf '%s' "$PSN_TEST_DATABASE_URL" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#')
	summary="PostgreSQL from PSN_TEST_DATABASE_URL ($shown)"
else
	start_cluster
	export PSN_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
	summary="throwaway PostgreSQL $(pg_version_of "$PG_BINDIR") from $PG_BINDIR at $PSN_TEST_DATABASE_URL"
fi
export PSN_TEST_DATABASE_URL
log "using $summary"

if [[ -n ${PSN_TEST_S3_URL:-} ]]; then
	log "using the S3-compatible server at $PSN_TEST_S3_URL"
else
	start_s3
	log "started moto (S3-compatible) at $PSN_TEST_S3_URL"
fi
export PSN_TEST_S3_URL

# The whole workspace, unless the caller picked packages (`-p psn-domain`): cargo ignores -p
# next to --workspace.
scope=(--workspace)
for arg in "$@"; do
	case $arg in
	--) break ;;
	-p | -p* | --package | --package=*) scope=() ;;
	esac
done

output=$(mktemp)
set +e
cargo test "${scope[@]}" --locked "$@" 2>&1 | tee "$output"
status=${PIPESTATUS[0]}
set -e

log "cargo test exited with $status; tests ran against $summary"
# One closing line for the whole run: the sum of every test binary's result line.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i + 1) ~ /^passed/) p += $i; if ($(i + 1) ~ /^failed/) f += $i } }
	END { printf "total: %d passed, %d failed\n", p, f }' "$output"
rm -f "$output"
exit "$status"
