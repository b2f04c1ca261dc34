# Multi-stage image of retention-monitor: build a wheel with its dependencies, run as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams streams
COPY metrics metrics
COPY alerts alerts
COPY retention_monitor retention_monitor
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 monitor
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER monitor
WORKDIR /home/monitor
ENV RETENTION_WEB_HOST=0.0.0.0 \
    RETENTION_DATA_DIR=/home/monitor/state
EXPOSE 6066
ENTRYPOINT ["retention-monitor"]
CMD ["worker"]
