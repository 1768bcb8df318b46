#!/usr/bin/env bash
# Starts and stops real servers on 127.0.0.1 for the pre-flight checks of the Penpot relations,
# so those checks are tested against the real protocols rather than mocks:
#
#   relations.sh up DIR     start them all (each on a free loopback port)
#   relations.sh down DIR   stop every process started by `up` (tolerates stopped ones)
#
#   PostgreSQL 15  Debian's postgresql: SCRAM-SHA-256 only over TCP, TLS on (sslmode=require and
#                  verify-full against the CA work), role and database `penpot`
#   Redis 7        Debian's redis-server: requirepass (the default user) and an ACL user `penpot`
#                  with another password, no persistence; a TLS port too when the build has TLS
#   SMTP           tests/harness/smtp-server.py on Debian's aiosmtpd: STARTTLS required before
#                  AUTH PLAIN/LOGIN, one login, 535 for wrong credentials; an SMTPS port too
#   S3             moto (PyPI, in a venv in the cache) through tests/harness/s3-server.py: every
#                  request must be signed with SigV4 by its one access key; one bucket
#
# One throwaway CA signs a server certificate for 127.0.0.1, ::1 and localhost that all TLS
# listeners share. Passwords are random per `up` and start with `relpw-`, so the leak check can
# grep for them. Everything lives in DIR/relations: env (export lines to source), ca.crt,
# secret-values.txt (each secret value, one a line), logs/<server>.log, pids/<server>.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"

# The newest PostgreSQL Debian installed (15 on bookworm).
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
# Debian's interpreter: aiosmtpd is Debian's package, and python3 on PATH may be another one.
debian_python=/usr/bin/python3
# moto's signature check was read and tested in this version (see s3-server.py): pinned.
s3_venv="$PENPOT_E2E_CACHE/relations-venv"
s3_requirements=("moto[server]==5.2.5" "boto3==1.44.8")
servers=(postgresql redis smtp s3) # start order; `down` stops them in reverse

# Each server runs in a session of its own (setsid), so it outlives this script and a Ctrl-C
# in the caller's terminal. Its output goes to its log: an inherited stdout would keep the
# caller's pipe open, and `relations.sh up | tail` would never end. Outside job control a
# background child leads no process group, so setsid runs the command in place and $! is the
# server's own pid.
start() { # NAME COMMAND...
  local name="$1"
  shift
  setsid "$@" </dev/null >"$r/logs/$name.log" 2>&1 &
  echo "$!" >"$r/pids/$name"
}

failed() { # NAME WHY
  log "error: $1 did not start ($2); last lines of $r/logs/$1.log:"
  tail -n 25 "$r/logs/$1.log" >&2 || true
  die "$1 did not start; the other servers are stopped again"
}

# Until COMMAND succeeds; stops early when the server's process has exited.
wait_for() { # NAME SECONDS COMMAND...
  local name="$1" deadline=$((SECONDS + $2)) pid
  shift 2
  pid="$(cat "$r/pids/$name")"
  while ((SECONDS < deadline)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || failed "$name" "its process exited"
    sleep 0.2
  done
  failed "$name" "no answer within $2 s"
}

password() { printf 'relpw-%s-%s' "$1" "$(openssl rand -hex 12)"; }

pki() {
  local p="$r/pki"
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=penpot-relations-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$p/server.key" -out "$p/server.csr" 2>/dev/null
  # Extensions make it an X.509 v3 certificate (rustls refuses v1); clients check the SANs.
  printf '%s\n' 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost' 'extendedKeyUsage=serverAuth' \
    'keyUsage=critical,digitalSignature,keyEncipherment' 'basicConstraints=critical,CA:FALSE' >"$p/server.ext"
  openssl x509 -req -in "$p/server.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 30 \
    -extfile "$p/server.ext" -out "$p/server.crt" 2>/dev/null
  cp "$p/ca.crt" "$r/ca.crt"
}

postgresql() {
  local pg="$r/pg" su
  # PostgreSQL refuses to run as root: as root, it runs as Debian's `postgres` user, which
  # needs to pass through DIR (a mktemp directory is 0700), so DIR and DIR/relations get
  # the search bit for others (no read bit: nothing becomes listable).
  local as_pg=()
  if [[ "$(id -u)" == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "no postgres user: install Debian's postgresql (tests/harness/deps.sh)"
    as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
    su=postgres
  else
    su="$(id -un)"
  fi
  # A clean environment: HOME is the data's parent, not /root, and no caller's PG* variables.
  as_pg+=(env -i "HOME=$pg" PATH=/usr/bin:/bin LC_ALL=C.UTF-8)
  mkdir -p "$pg/run"
  cp "$r/pki/server.crt" "$r/pki/server.key" "$pg/"
  chmod 600 "$pg/server.key" # else postgres refuses the key
  if [[ "$(id -u)" == 0 ]]; then
    chmod a+x "$dir" "$r"
    chown -R postgres:postgres "$pg"
  fi
  "${as_pg[@]}" test -w "$pg" ||
    die "user $su cannot write $pg: a directory above it denies others the search bit (o+x)"

  "${as_pg[@]}" "$pg_bin/initdb" -D "$pg/data" -U "$su" -E UTF8 --no-sync \
    --auth-local=peer --auth-host=scram-sha-256 >"$r/logs/postgresql-initdb.log" 2>&1 ||
    failed postgresql-initdb "initdb failed"
  # Only the superuser over the socket (peer: the OS user), SCRAM for everyone over TCP: no
  # trust, and no md5 fallback. `host` (not `hostssl`) so that a client can also try without TLS.
  cat >"$pg/data/pg_hba.conf" <<EOF
local all $su peer
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
EOF
  cat >>"$pg/data/postgresql.conf" <<EOF
# relations.sh
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pg/run'
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '$pg/server.crt'
ssl_key_file = '$pg/server.key'
# Who connected, with or without TLS (never a password): evidence for the tests.
log_connections = on
# Throwaway data: no need to wait for the disk.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  start postgresql "${as_pg[@]}" "$pg_bin/postgres" -D "$pg/data"
  wait_for postgresql 30 "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"
  # The password reaches psql through its environment and \getenv, never argv or a file; the
  # server hashes it with SCRAM (password_encryption) and logs no statement that succeeds.
  "${as_pg[@]}" "PENPOT_PG_PASSWORD=$pg_password" "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 \
    -h "$pg/run" -p "$pg_port" -U "$su" -d postgres >>"$r/logs/postgresql.log" 2>&1 <<'EOF' ||
\getenv pw PENPOT_PG_PASSWORD
CREATE ROLE penpot LOGIN PASSWORD :'pw';
CREATE DATABASE penpot OWNER penpot;
EOF
    failed postgresql "creating role and database penpot failed"
}

redis_ping() { # PORT [redis-cli TLS flags...]
  local port="$1"
  shift
  [[ "$(REDISCLI_AUTH="$redis_password" redis-cli "$@" -h 127.0.0.1 -p "$port" --user penpot ping)" == PONG ]]
}

redis() {
  local d="$r/redis"
  mkdir -p "$d"
  # Debian links redis-server against OpenSSL when it is built with TLS; without it, no TLS port.
  redis_tls_port=""
  if ldd "$(command -v redis-server)" 2>/dev/null | grep -q libssl; then
    redis_tls_port=$(free_port)
  else
    log "redis-server has no TLS support: no REDIS_TLS_PORT"
  fi
  (
    umask 077 # the file holds the passwords
    cat >"$d/redis.conf" <<EOF
bind 127.0.0.1
port $redis_port
protected-mode no
daemonize no
dir $d
# No persistence: a throwaway server.
save ""
appendonly no
# requirepass is the \`default\` user's password (AUTH with one argument); \`penpot\` is an ACL
# user (AUTH with two). Different passwords, so a test sees which one a client sent.
# &*: all Pub/Sub channels, which Penpot uses (Redis 7 gives new users none by default).
requirepass $redis_default_password
user penpot on >$redis_password ~* &* +@all
EOF
    if [[ -n "$redis_tls_port" ]]; then
      cat >>"$d/redis.conf" <<EOF
# Server authentication only: clients need no certificate.
tls-port $redis_tls_port
tls-cert-file $r/pki/server.crt
tls-key-file $r/pki/server.key
tls-ca-cert-file $r/pki/ca.crt
tls-auth-clients no
EOF
    fi
  )
  start redis redis-server "$d/redis.conf"
  wait_for redis 30 redis_ping "$redis_port"
  if [[ -n "$redis_tls_port" ]]; then
    wait_for redis 30 redis_ping "$redis_tls_port" --tls --cacert "$r/ca.crt"
  fi
}

# STARTTLS then login on the one port, login over implicit TLS on the other, both trusting
# only the throwaway CA.
smtp_ready() {
  SMTP_PASSWORD="$smtp_password" "$debian_python" - "$smtp_port" "$smtps_port" "$r/ca.crt" <<'EOF'
import os, smtplib, ssl, sys
port, smtps_port, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
with smtplib.SMTP("127.0.0.1", port, timeout=5) as s:
    s.starttls(context=ctx)
    s.login("penpot", os.environ["SMTP_PASSWORD"])
with smtplib.SMTP_SSL("127.0.0.1", smtps_port, timeout=5, context=ctx) as s:
    s.login("penpot", os.environ["SMTP_PASSWORD"])
EOF
}

smtp() {
  "$debian_python" -c 'import aiosmtpd' 2>/dev/null ||
    die "no aiosmtpd for $debian_python: install Debian's python3-aiosmtpd (tests/harness/deps.sh)"
  # The password goes in the environment (env execs, so it is in no argv `ps` shows).
  start smtp env "SMTP_PASSWORD=$smtp_password" "$debian_python" "$here/smtp-server.py" \
    --port "$smtp_port" --smtps-port "$smtps_port" \
    --cert "$r/pki/server.crt" --key "$r/pki/server.key" --user penpot
  wait_for smtp 30 smtp_ready
}

# moto and boto3 in a venv in the cache, installed once per requirement list: a second `up`
# costs nothing. The lock keeps two concurrent `up`s from building the same venv.
s3_install() {
  mkdir -p "$PENPOT_E2E_CACHE"
  exec 9>"$PENPOT_E2E_CACHE/relations-venv.lock"
  flock 9
  if [[ "$(cat "$s3_venv/.requirements" 2>/dev/null)" != "${s3_requirements[*]}" ]]; then
    log "installing ${s3_requirements[*]} into $s3_venv (PyPI, once)"
    rm -rf "$s3_venv"
    "$debian_python" -m venv "$s3_venv" >"$r/logs/s3-install.log" 2>&1 &&
      "$s3_venv/bin/pip" install --disable-pip-version-check --no-input "${s3_requirements[@]}" \
        >>"$r/logs/s3-install.log" 2>&1 ||
      failed s3-install "making the venv or pip install failed"
    printf '%s' "${s3_requirements[*]}" >"$s3_venv/.requirements"
  fi
  exec 9>&-
}

s3() {
  s3_install
  mkdir -p "$r/s3"
  start s3 "$s3_venv/bin/python" "$here/s3-server.py" --port "$s3_port" \
    --bucket "$s3_bucket" --region "$s3_region" --out "$r/s3/credentials"
  # The key file appears once the user, key and bucket exist and signatures are required.
  wait_for s3 60 test -s "$r/s3/credentials"
  { read -r s3_access_key && read -r s3_secret_key; } <"$r/s3/credentials"
}

up() {
  if [[ -d "$r/pids" ]] && compgen -G "$r/pids/*" >/dev/null; then
    die "$r has pid files: run \`relations.sh down $dir\` first"
  fi
  command -v redis-server >/dev/null && [[ -x "$pg_bin/postgres" ]] ||
    die "PostgreSQL 15 or redis-server missing: run tests/harness/deps.sh"
  local started=$SECONDS
  # A fresh start each time: data, certificates and passwords from a previous `up` go.
  rm -rf "$r"
  mkdir -p "$r/logs" "$r/pids"
  # A failed `up` stops what it had started.
  trap 'status=$?; if ((status != 0)); then down; fi' EXIT

  pg_password=$(password pg)
  redis_password=$(password redis)
  redis_default_password=$(password redis-default)
  smtp_password=$(password smtp)
  pg_port=$(free_port)
  redis_port=$(free_port)
  smtp_port=$(free_port)
  smtps_port=$(free_port)
  s3_port=$(free_port)
  s3_bucket=penpot
  s3_region=eu-west-1

  pki
  postgresql
  redis
  smtp
  s3

  # printf %q: every value is safe to source whatever it holds.
  {
    printf 'export %s=%q\n' \
      PG_HOST 127.0.0.1 PG_PORT "$pg_port" PG_USER penpot PG_PASSWORD "$pg_password" \
      PG_DATABASE penpot \
      REDIS_HOST 127.0.0.1 REDIS_PORT "$redis_port" REDIS_USER penpot \
      REDIS_PASSWORD "$redis_password" REDIS_DEFAULT_PASSWORD "$redis_default_password"
    [[ -z "$redis_tls_port" ]] || printf 'export REDIS_TLS_PORT=%q\n' "$redis_tls_port"
    printf 'export %s=%q\n' \
      SMTP_HOST 127.0.0.1 SMTP_PORT "$smtp_port" SMTPS_PORT "$smtps_port" SMTP_USER penpot \
      SMTP_PASSWORD "$smtp_password" \
      S3_ENDPOINT "http://127.0.0.1:$s3_port" S3_ACCESS_KEY "$s3_access_key" \
      S3_SECRET_KEY "$s3_secret_key" S3_BUCKET "$s3_bucket" S3_REGION "$s3_region" \
      RELATIONS_CA "$r/ca.crt" RELATIONS_PYTHON "$s3_venv/bin/python"
  } >"$r/env"
  printf '%s\n' "$pg_password" "$redis_password" "$redis_default_password" "$smtp_password" \
    "$s3_secret_key" >"$r/secret-values.txt"
  chmod 600 "$r/env" "$r/secret-values.txt"
  log "relations up in $((SECONDS - started)) s: source $r/env"
}

down() {
  [[ -d "$r/pids" ]] || return 0
  local name f i
  for ((i = ${#servers[@]} - 1; i >= 0; i--)); do
    f="$r/pids/${servers[i]}"
    [[ -f "$f" ]] || continue
    # SIGINT is PostgreSQL's fast shutdown; its SIGTERM would wait for clients to disconnect.
    if [[ "${servers[i]}" == postgresql ]]; then
      kill -INT "$(cat "$f")" 2>/dev/null || true
    else
      kill "$(cat "$f")" 2>/dev/null || true
    fi
  done
  for name in "${servers[@]}"; do
    f="$r/pids/$name"
    if [[ -f "$f" ]]; then reap "$f"; fi
  done
  log "relations in $r stopped"
}

cmd="${1:-}"
dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || die "usage: relations.sh up|down DIR"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
r="$dir/relations"
case "$cmd" in
  up) up ;;
  down) down ;;
  *) die "usage: relations.sh up|down DIR" ;;
esac
