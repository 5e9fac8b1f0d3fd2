#!/usr/bin/env bash
# What the test suite drives for real, installed or started when missing (`make test` runs this first; so does CI):
# - PostgreSQL on 127.0.0.1:5432 accepting the `postgres` user without a password (the store and Airflow tests;
#   PROMPTMILL_TEST_PG_URL points the tests at another server, and then this script leaves PostgreSQL alone);
# - Debian packages: headless Chromium and fonts (the dataset page screenshot), docker-compose (the compose file is
#   validated statically; no engine is needed), redis-server (the CeleryExecutor test's broker).
# Installing needs root (or passwordless sudo); without it the script says what to install and exits 1.
# Quick when everything is there: it only looks.
set -euo pipefail

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif sudo -n true 2>/dev/null; then sudo "$@"
  else
    echo "test prerequisites: need root to run: $*" >&2
    echo "test prerequisites: run it yourself (or as root: make test), then make test again" >&2
    exit 1
  fi
}

pg_up() {
  python3 - <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(2)
sys.exit(0 if s.connect_ex(("127.0.0.1", 5432)) == 0 else 1)
PY
}

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
fresh_postgres=false
if [[ -z "${PROMPTMILL_TEST_PG_URL:-}" ]] && ! pg_up && ! ls /etc/postgresql >/dev/null 2>&1; then
  missing+=(postgresql)
  fresh_postgres=true
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "test prerequisites: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if $fresh_postgres; then
  # A cluster installed here for the tests: the `postgres` user may connect over TCP from this machine only,
  # without a password, as the tests (and CI) expect. (apt may have started it already: reload.)
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  pg_up && as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
fi
if [[ -z "${PROMPTMILL_TEST_PG_URL:-}" ]] && ! pg_up; then
  version="$(ls /etc/postgresql | sort -V | tail -1)"
  echo "test prerequisites: starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "test prerequisites: PostgreSQL is still not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi
