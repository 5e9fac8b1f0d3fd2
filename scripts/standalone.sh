#!/usr/bin/env bash
# promptmill in `airflow standalone` (no Docker): scheduler, DAG processor, triggerer and API server in one command,
# with Airflow's files in <repo>/airflow_home, this repo's dags/ and plugins/, and settings sized for a small machine.
#
#   scripts/standalone.sh                      # UI and the dataset page: http://127.0.0.1:8080
#   scripts/standalone.sh --port 8090          # another port (or AIRFLOW__API__PORT=8090): everything follows it
#   OPENAI_API_KEY=sk-... PROMPTMILL_LABEL_MAX_USD=5 scripts/standalone.sh
#
# The store: PROMPTMILL_DATABASE_URL (a postgresql:// URL becomes the `promptmill_db` connection), else the embedded
# SQLite file data/promptmill.sqlite. The UI user is `admin`; its password is printed on the first start and kept in
# airflow_home/simple_auth_manager_passwords.json.generated. Every AIRFLOW__*/PROMPTMILL_* variable already set wins.
set -euo pipefail

while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || { echo "standalone: --port needs a number" >&2; exit 2; }
            export AIRFLOW__API__PORT="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "standalone: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_BIN="${PROMPTMILL_VENV_BIN:-$REPO/.venv/bin}"
if [[ ! -x "$VENV_BIN/airflow" ]]; then
  echo "standalone: $VENV_BIN/airflow not found: run 'make setup' first (or set PROMPTMILL_VENV_BIN)" >&2
  exit 1
fi
export PATH="$VENV_BIN:$PATH"

export AIRFLOW_HOME="${AIRFLOW_HOME:-$REPO/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$REPO/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$REPO/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
# LocalExecutor starts one worker process per parallelism slot: keep it small on a laptop or a 2-core box.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}"
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
# Tasks reach the scheduler through the API server's Task Execution API, at base_url unless told otherwise: both
# must follow the port, or every task fails with an empty log when the server is not on 8080.
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-$AIRFLOW__API__BASE_URL/execution/}"
# Before a task's body runs, its supervisor tells the API server (Task Execution API) that the task starts; it also
# heartbeats and reports the end through it. Airflow's default retry budget for these calls is spent within seconds:
# a task queued while the API server restarts (this script restarted, or the API server alone) fails its try before
# its body runs, its retry fails the same way while the server is still away, and the run fails. Every retry waits at
# least WAIT_MIN, so (RETRIES - 1) x WAIT_MIN is the downtime a task rides out without spending a try. The cost: a
# stop (Ctrl-C) while a task is in flight waits as long for that task's worker. docker-compose.yaml sets the same
# (tests/ops/test_restart.py checks both and restarts the API server under this script).
export AIRFLOW__WORKERS__EXECUTION_API_RETRIES="${AIRFLOW__WORKERS__EXECUTION_API_RETRIES:-10}"
export AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN="${AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN:-10}"
export AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX="${AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX:-20}"
export PROMPTMILL_DATA_DIR="${PROMPTMILL_DATA_DIR:-$REPO/data}"
export PROMPTMILL_LANDING_DIR="${PROMPTMILL_LANDING_DIR:-$PROMPTMILL_DATA_DIR/landing}"
mkdir -p "$AIRFLOW_HOME" "$PROMPTMILL_LANDING_DIR"

# Connections as JSON env vars (built by Python: no shell quoting of secrets). Never echoed.
if [[ -n "${OPENAI_API_KEY:-}" && -z "${AIRFLOW_CONN_OPENAI_DEFAULT:-}" ]]; then
  AIRFLOW_CONN_OPENAI_DEFAULT="$(python - <<'PY'
import json, os
print(json.dumps({"conn_type": "openai", "password": os.environ["OPENAI_API_KEY"],
                  "host": os.environ.get("OPENAI_BASE_URL") or None}))
PY
)"
  export AIRFLOW_CONN_OPENAI_DEFAULT
fi
if [[ "${PROMPTMILL_DATABASE_URL:-}" == postgres* && -z "${AIRFLOW_CONN_PROMPTMILL_DB:-}" ]]; then
  AIRFLOW_CONN_PROMPTMILL_DB="$(python - <<'PY'
import json, os
from sqlalchemy.engine import make_url
url = make_url(os.environ["PROMPTMILL_DATABASE_URL"].replace("postgres://", "postgresql://", 1))
print(json.dumps({"conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username,
                  "password": url.password, "schema": url.database}))
PY
)"
  export AIRFLOW_CONN_PROMPTMILL_DB
fi

echo "standalone: AIRFLOW_HOME=$AIRFLOW_HOME, UI on http://$AIRFLOW__API__HOST:$AIRFLOW__API__PORT"
airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1 || {
  echo "standalone: airflow db migrate failed; see $AIRFLOW_HOME/db-migrate.log" >&2
  exit 1
}
airflow pools set openai "${PROMPTMILL_OPENAI_POOL_SLOTS:-4}" "OpenAI concurrency" > /dev/null
exec airflow standalone
