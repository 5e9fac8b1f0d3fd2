#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data volume (/docker-entrypoint-initdb.d):
# creates promptmill's own role and database next to Airflow's metadata database.
set -euo pipefail

: "${PROMPTMILL_DB_USER:?PROMPTMILL_DB_USER is not set (see .env.example)}"
: "${PROMPTMILL_DB_PASSWORD:?PROMPTMILL_DB_PASSWORD is not set (see .env.example)}"
: "${PROMPTMILL_DB_NAME:?PROMPTMILL_DB_NAME is not set (see .env.example)}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db_user="$PROMPTMILL_DB_USER" -v db_password="$PROMPTMILL_DB_PASSWORD" -v db_name="$PROMPTMILL_DB_NAME" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'db_user', :'db_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db_user') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db_name', :'db_user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db_name') \gexec
SQL
echo "promptmill database ${PROMPTMILL_DB_NAME} (owner ${PROMPTMILL_DB_USER}) is ready"
