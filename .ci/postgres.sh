#!/usr/bin/env bash
# Start a local PostgreSQL on 127.0.0.1:5432 with role (CREATEDB: one database per pytest-xdist
# worker) and database freightml/freightml,
# for the collector's PostgreSQL tests. Idempotent; prints nothing unless something fails.
# Then: export FREIGHTML_TEST_POSTGRES_URL=postgresql+psycopg://freightml:freightml@127.0.0.1:5432/freightml
# Knobs: FREIGHTML_PG_PORT (5432), FREIGHTML_PG_INITDB=1 (own cluster via initdb + pg_ctl in
# FREIGHTML_PG_DIR, default /tmp/freightml-postgres, instead of Debian's pg_ctlcluster).
set -euo pipefail

PORT="${FREIGHTML_PG_PORT:-5432}"
ROLE=freightml
PASSWORD=freightml
DB=freightml
FALLBACK_DIR="${FREIGHTML_PG_DIR:-/tmp/freightml-postgres}"
LOG="$(mktemp -t freightml-postgres.XXXXXX.log)"
trap 'rm -f "$LOG"' EXIT

die() {
  echo "postgres.sh: $*" >&2
  if [ -s "$LOG" ]; then
    echo "--- last output ---" >&2
    tail -n 20 "$LOG" >&2
  fi
  exit 1
}

# Run a command as the postgres OS user (we are root or already postgres).
as_postgres() {
  if [ "$(id -un)" = postgres ]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  else
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

pg_bin_dir() {
  local v
  v="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/postgres" ] && echo "/usr/lib/postgresql/$v/bin"
}

ready() {
  pg_isready -q -h 127.0.0.1 -p "$PORT" >/dev/null 2>&1
}

# 1. Install Debian's postgresql if the server binaries are missing.
if [ -z "$(pg_bin_dir || true)" ]; then
  [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not installed and installing it needs root (apt-get install postgresql)"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available; install PostgreSQL 13+ by hand"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$LOG" 2>&1 || die "apt-get update failed"
  apt-get install -y -qq postgresql >>"$LOG" 2>&1 || die "apt-get install postgresql failed"
fi
BIN="$(pg_bin_dir)" || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
VERSION="$(basename "$(dirname "$BIN")")"
export PATH="$BIN:$PATH"
id postgres >/dev/null 2>&1 || die "the postgres OS user does not exist; reinstall the postgresql package"
if [ "$(id -u)" -ne 0 ] && [ "$(id -un)" != postgres ]; then
  ready || die "no server on 127.0.0.1:$PORT and starting one needs root or the postgres user"
fi

# 2. Start a cluster unless something already answers on the port.
if ! ready; then
  if [ -z "${FREIGHTML_PG_INITDB:-}" ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    if ! pg_lsclusters -h 2>/dev/null | awk -v v="$VERSION" '$1 == v && $2 == "main"' | grep -q .; then
      pg_createcluster "$VERSION" main -p "$PORT" >"$LOG" 2>&1 || die "pg_createcluster $VERSION main failed"
    fi
    pg_ctlcluster "$VERSION" main start >"$LOG" 2>&1 \
      || pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" && $4 == "online"' | grep -q . \
      || die "pg_ctlcluster $VERSION main start failed (see /var/log/postgresql/postgresql-$VERSION-main.log)"
  else
    if [ ! -s "$FALLBACK_DIR/PG_VERSION" ]; then
      mkdir -p "$FALLBACK_DIR"
      chown postgres "$FALLBACK_DIR"
      as_postgres initdb -D "$FALLBACK_DIR" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        >"$LOG" 2>&1 || die "initdb -D $FALLBACK_DIR failed"
    fi
    as_postgres pg_ctl -D "$FALLBACK_DIR" -l "$FALLBACK_DIR/server.log" -w \
      -o "-p $PORT -c listen_addresses=127.0.0.1 -k /tmp" start >"$LOG" 2>&1 \
      || die "pg_ctl start failed (see $FALLBACK_DIR/server.log)"
  fi
  for _ in $(seq 1 60); do
    ready && break
    sleep 0.5
  done
  ready || die "PostgreSQL did not accept connections on 127.0.0.1:$PORT within 30 s"
fi

# 3. Role and database (as the superuser, over the local socket).
psql_admin() {
  if [ "$(id -u)" -eq 0 ] || [ "$(id -un)" = postgres ]; then
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres -tA "$@"
  else
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tA "$@"
  fi
}
if [ -d /tmp ] && ! [ -S "/var/run/postgresql/.s.PGSQL.$PORT" ] && [ -S "/tmp/.s.PGSQL.$PORT" ]; then
  export PGHOST=/tmp
fi
psql_admin -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END \$\$;" >"$LOG" 2>&1 || die "could not create role $ROLE"
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" 2>>"$LOG")" != 1 ]; then
  psql_admin -c "CREATE DATABASE $DB OWNER $ROLE" >"$LOG" 2>&1 || die "could not create database $DB"
fi

# 4. Check that the application can log in over TCP with the password.
PGPASSWORD="$PASSWORD" psql -X -q -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d "$DB" -tA -c "SELECT 1" \
  >"$LOG" 2>&1 || die "cannot log in as $ROLE to $DB on 127.0.0.1:$PORT (check pg_hba.conf allows scram-sha-256 on 127.0.0.1)"
