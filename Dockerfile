# promptmill on the official Airflow image: the pinned lock, then the package, then the DAG and the plugin.
# Build: docker compose build (docker-compose.yaml builds this file), or docker build -t promptmill-airflow .
FROM apache/airflow:3.3.2-python3.11

# The lock first, so editing code does not reinstall dependencies. Pinning apache-airflow in the same command keeps
# pip from up- or downgrading the image's Airflow. Never _PIP_ADDITIONAL_REQUIREMENTS: it reinstalls on every start.
COPY --chown=airflow:root requirements.txt /opt/promptmill/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /opt/promptmill/requirements.txt

# The promptmill package (include/promptmill), without dependencies: the lock above already holds them all.
COPY --chown=airflow:root pyproject.toml README.md /opt/promptmill/
COPY --chown=airflow:root include/ /opt/promptmill/include/
RUN pip install --no-cache-dir --no-deps /opt/promptmill \
    && python -c "import promptmill.dashboard, promptmill.labeling, promptmill.publishing"

# Wiring only: the DAG file and the dataset page plugin.
COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/

# Where the store's embedded defaults, the landing folder and publications live (bind mounts in compose).
ENV PROMPTMILL_DATA_DIR=/opt/airflow/promptmill \
    PROMPTMILL_LANDING_DIR=/opt/airflow/promptmill/landing
