"""Static checks of the deployment files (no Docker engine here): compose validated by Debian's docker-compose and
checked against the repo, the Dockerfile's sources and pins, .env.example against the settings the package reads,
and the PostgreSQL init script run for real against the local server."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from promptmill.labeling.settings import LabelSettings
from promptmill.publishing.settings import PublishSettings
from promptmill.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
INIT_SCRIPT = REPO / "scripts" / "postgres-init" / "10-promptmill-database.sh"
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer", "airflow-init")
# Set by the DAG at run time, or by compose's own `environment:` from other variables: not for .env.
NOT_IN_ENV_FILE = {"PROMPTMILL_LABEL_RUN_KEY", "PROMPTMILL_DATABASE_URL", "PROMPTMILL_DATA_DIR",
                   "PROMPTMILL_LANDING_DIR"}


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


@pytest.fixture(scope="module")
def resolved_compose(tmp_path_factory) -> dict:
    """`docker-compose config` (schema validation + interpolation) with .env = .env.example plus the required key."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: apt-get install -y docker-compose", pytrace=False)
    work = tmp_path_factory.mktemp("compose")
    shutil.copy(COMPOSE, work / "docker-compose.yaml")
    env = ENV_EXAMPLE.read_text() + "\nOPENAI_API_KEY=sk-test-not-a-key\nPROMPTMILL_DB_PASSWORD=Pw-9_x.y~z\n"
    (work / ".env").write_text(env.replace("PROMPTMILL_DB_PASSWORD=promptmill\n", ""))
    result = subprocess.run([binary, "config"], cwd=work, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"docker-compose config rejected the file:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_the_official_services_with_celery(resolved_compose):
    services = resolved_compose["services"]
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis"} <= set(services)
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "false"
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in env
        assert services[name]["build"]["context"]
    # the worker scales: no fixed name, no host port
    worker = services["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] in ("celery worker", ["celery", "worker"])


def test_compose_connections_are_valid_json_with_the_env_values(resolved_compose):
    env = resolved_compose["services"]["airflow-worker"]["environment"]
    store = json.loads(env["AIRFLOW_CONN_PROMPTMILL_DB"])
    assert store["conn_type"] == "postgres" and store["host"] == "postgres"
    assert store["password"] == "Pw-9_x.y~z" and store["schema"] == env_example()["PROMPTMILL_DB_NAME"]
    openai = json.loads(env["AIRFLOW_CONN_OPENAI_DEFAULT"])
    assert openai == {"conn_type": "openai", "password": "sk-test-not-a-key", "host": ""}


def test_compose_init_creates_pool_and_store_database(resolved_compose):
    services = resolved_compose["services"]
    init_script = "\n".join(services["airflow-init"]["command"])
    assert re.search(r'airflow pools set openai "\$?\$\{PROMPTMILL_OPENAI_POOL_SLOTS:-4\}" "OpenAI concurrency"', init_script)
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in services["postgres"]["volumes"]]
    assert any(m.endswith(":/docker-entrypoint-initdb.d") or ":/docker-entrypoint-initdb.d:" in m for m in mounts)


def test_compose_bind_mounts_exist_in_the_repo():
    """Every bind-mounted repo folder exists (logs/, config/ and the data folders are created at run time)."""
    runtime_created = {"./logs", "./config", "./data/landing", "./data/published"}
    volumes = list(raw_compose()["x-airflow-common"]["volumes"])
    for service in raw_compose()["services"].values():
        volumes += [v for v in service.get("volumes", []) if isinstance(v, str)]
    for volume in volumes:
        # the defaults of ${VAR:-default}, as an empty .env gives them
        source = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), volume).split(":")[0]
        if source == "postgres-db-volume" or source in runtime_created:
            continue
        assert (REPO / source).exists(), f"docker-compose.yaml mounts {source}, which is not in the repo"


def test_every_compose_variable_is_documented_in_env_example():
    text = COMPOSE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", text))  # $${...} is the container's shell, not compose
    documented = set(env_example())
    assert used - documented - {"ENV_FILE_PATH"} == set()


def _fields(cls) -> set[str]:
    return set(cls.model_fields)


def test_env_example_documents_exactly_the_package_settings():
    documented = {name for name in env_example() if name.startswith("PROMPTMILL_")}
    expected = (
        {f"PROMPTMILL_LABEL_{name.upper()}" for name in _fields(LabelSettings)}
        | {f"PROMPTMILL_PUBLISH_{name.upper()}" for name in _fields(PublishSettings)}
        | {f"PROMPTMILL_{name.upper()}" for name in _fields(Settings)}
    )
    compose_only = {n for n in documented if re.search(rf"\$\{{{n}\b", COMPOSE.read_text())}
    assert expected - NOT_IN_ENV_FILE - documented == set(), "settings missing from .env.example"
    assert documented - expected - compose_only == set(), ".env.example names settings the package does not read"
    # and the documented values are accepted by the package as they stand
    env = env_example()
    LabelSettings.from_env(env)
    PublishSettings.from_env(env)
    Settings.from_env(env)


def test_dockerfile_pins_and_copies_existing_sources():
    text = "\n".join(line for line in (REPO / "Dockerfile").read_text().splitlines() if not line.startswith("#"))
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert froms == ["apache/airflow:3.3.2-python3.11"] and "3.11" in requires
    locked = re.search(r"^apache-airflow==(\S+)", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert f'"apache-airflow=={locked}"' in text and "-r /opt/promptmill/requirements.txt" in text
    assert "--no-deps /opt/promptmill" in text and "_PIP_ADDITIONAL_REQUIREMENTS" not in text
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for line in re.findall(r"^COPY\s+(.+)$", text, re.M):
        parts = [p for p in line.split() if not p.startswith("--")]
        for source in parts[:-1]:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repo"
            assert source.rstrip("/") not in ignored, f".dockerignore hides {source} from the build"


def test_postgres_init_script_creates_the_store_database_idempotently(pg_database):
    """Run the init script as the postgres image would (psql as the superuser), twice."""
    if shutil.which("psql") is None:
        pytest.fail("psql is not installed (Debian postgresql-client)", pytrace=False)
    admin_url = sa.engine.make_url(pg_database)
    name, user, password = f"pm_init_{secrets.token_hex(4)}", f"pm_user_{secrets.token_hex(4)}", "pw'with\"quotes"
    env = {
        "PATH": "/usr/bin:/bin", "PGHOST": admin_url.host or "127.0.0.1", "PGPORT": str(admin_url.port or 5432),
        "POSTGRES_USER": admin_url.username or "postgres", "POSTGRES_DB": admin_url.database,
        "PROMPTMILL_DB_USER": user, "PROMPTMILL_DB_PASSWORD": password, "PROMPTMILL_DB_NAME": name,
    }
    if admin_url.password:
        env["PGPASSWORD"] = admin_url.password
    admin = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    try:
        for _ in range(2):
            result = subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
        store = sa.create_engine(admin_url.set(database=name, username=user, password=password))
        with store.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user, current_database()")).one() == (user, name)
            conn.execute(sa.text("CREATE TABLE owned_by_store (id int)"))  # the role owns its database
            conn.commit()
        store.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{user}"'))
        admin.dispose()
