# Multi-stage image of retention-monitor: a Rust stage builds the compiled apply step (native/), a builder
# stage makes the wheels of the package and of its dependencies at the versions of constraints.txt (the
# ones CI passed with), the final stage installs only those wheels and runs as a non-root user.
# alerts/rules.yml (the shipped alert rules) is package data of `alerts` (pyproject.toml), so it is in the wheel.
ARG PYTHON_IMAGE=python:3.11-slim

FROM rust:1-slim-bookworm AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip python3-venv \
    && python3 -m venv /venv && /venv/bin/pip install --no-cache-dir "maturin>=1.7,<2.0"
COPY native /native
# abi3: one wheel for every CPython >= 3.11, whichever Python the final image has.
RUN /venv/bin/maturin build --release --manifest-path /native/Cargo.toml --out /native-wheels

FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY core core
COPY streams streams
COPY metrics metrics
COPY alerts alerts
COPY retention_monitor retention_monitor
COPY --from=native /native-wheels /wheels
RUN pip wheel --no-cache-dir --wheel-dir /wheels --find-links /wheels -c constraints.txt .

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="retention-monitor" \
      org.opencontainers.image.description="Streaming monitor for customer-retention KPIs (Kafka, Faust, Prometheus, Alertmanager)" \
      org.opencontainers.image.source="https://github.com/retention-monitor/retention-monitor" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# Numeric uid/gid so Kubernetes can verify runAsNonRoot; the state dir exists (owned by the user) so that
# volumes mounted there (docker-compose named volumes) start with the right owner.
RUN groupadd --gid 10001 monitor \
    && useradd --create-home --uid 10001 --gid 10001 monitor \
    && install -d -o 10001 -g 10001 /home/monitor/state
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels retention-monitor && rm -rf /wheels \
    && python -c "import importlib.resources as r; assert r.files('alerts').joinpath('rules.yml').is_file()"
USER 10001:10001
WORKDIR /home/monitor
ENV RETENTION_WEB_HOST=0.0.0.0 \
    RETENTION_DATA_DIR=/home/monitor/state \
    PYTHONUNBUFFERED=1
EXPOSE 6066
# The worker's readiness page on the port its settings give (RETENTION_WEB_PORT or the RETENTION_CONFIG file):
# healthy once it owns partitions and has restored them. Containers running another command (simulate,
# publish) turn this off (docker-compose.yml). No curl in the image: Python's urllib.
HEALTHCHECK --interval=10s --timeout=10s --start-period=60s --retries=6 \
    CMD ["python", "-c", "import urllib.request; from core.config import load_settings; s = load_settings(None).settings; urllib.request.urlopen(f'http://127.0.0.1:{s.web_port}/ready', timeout=5)"]
ENTRYPOINT ["retention-monitor"]
CMD ["worker"]
