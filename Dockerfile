# Multi-stage image of retention-monitor: build a wheel with its dependencies, run as a non-root user.
# alerts/rules.yml (the shipped alert rules) is package data of `alerts` (pyproject.toml), so it is in the wheel.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY streams streams
COPY metrics metrics
COPY alerts alerts
COPY retention_monitor retention_monitor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

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
