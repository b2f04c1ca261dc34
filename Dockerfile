# Multi-stage image of retention-monitor: build the wheels (the compiled apply step with Rust), run as a
# non-root user. alerts/rules.yml (the shipped alert rules) is package data of `alerts`, so it is in the wheel.
FROM rust:1-slim-bookworm AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip python3-venv \
    && python3 -m venv /venv && /venv/bin/pip install --no-cache-dir "maturin>=1.7,<2.0"
COPY native /native
# abi3: one wheel for every CPython >= 3.11, whichever Python the final image has.
RUN /venv/bin/maturin build --release --manifest-path /native/Cargo.toml --out /native-wheels

FROM python:3.11-slim AS build
WORKDIR /src
COPY --from=native /native-wheels /native-wheels
COPY pyproject.toml README.md ./
COPY core core
COPY streams streams
COPY metrics metrics
COPY alerts alerts
COPY retention_monitor retention_monitor
RUN mkdir -p /wheels && cp /native-wheels/*.whl /wheels/ \
    && pip wheel --no-cache-dir --wheel-dir /wheels --find-links /native-wheels .

FROM python:3.11-slim
# Numeric uid/gid so Kubernetes can verify runAsNonRoot; the state dir exists (owned by the user) so that
# volumes mounted there (docker-compose named volumes) start with the right owner.
RUN groupadd --gid 10001 monitor \
    && useradd --create-home --uid 10001 --gid 10001 monitor \
    && install -d -o 10001 -g 10001 /home/monitor/state
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && python -c "import importlib.resources as r; assert r.files('alerts').joinpath('rules.yml').is_file()"
USER 10001:10001
WORKDIR /home/monitor
ENV RETENTION_WEB_HOST=0.0.0.0 \
    RETENTION_DATA_DIR=/home/monitor/state \
    PYTHONUNBUFFERED=1
EXPOSE 6066
ENTRYPOINT ["retention-monitor"]
CMD ["worker"]
