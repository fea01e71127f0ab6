# shiftbot: one asyncio process (adapters, HTTP server, scheduler). docs/operations.md.
# Build: docker build -t shiftbot .
# Run:   docker run --read-only --tmpfs /tmp -v shiftbot-state:/var/lib/shiftbot \
#          -v /etc/shiftbot:/etc/shiftbot:ro --env-file shiftbot.env -p 8080:8080 shiftbot
# Two replicas on PostgreSQL: deploy/compose.yaml.
#
# Non-root: the process runs as the user shiftbot (uid 10001), never as root.
# Read-only root file system: nothing is written outside the state volume /var/lib/shiftbot
# (SQLite's file when bot.database is sqlite:////var/lib/shiftbot/shiftbot.db; HOME) and /tmp
# (a tmpfs). No .pyc files are written (PYTHONDONTWRITEBYTECODE); the templates are installed.
# Secrets come from the environment (--env-file, the config's ${VAR}), never from the image.
# In the mounted shiftbot.yaml set bot.http.host: 0.0.0.0 (probes and Slack reach the port).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SHIFTBOT_CONFIG=/etc/shiftbot/shiftbot.yaml

RUN useradd --system --create-home --home-dir /var/lib/shiftbot --uid 10001 shiftbot

WORKDIR /opt/shiftbot
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY config/templates ./config/templates
RUN pip install '.[postgres]'

USER shiftbot
WORKDIR /var/lib/shiftbot
VOLUME ["/var/lib/shiftbot"]
EXPOSE 8080
# Liveness, /healthz: the process lives (event loop answering, platform sockets within their
# watchdog's grace). An orchestrator that restarts unhealthy containers (Swarm, autoheal) must
# use this one. Readiness, /readyz (database, schema, platforms, outbox), is for load balancers
# and depends_on: deploy/compose.yaml overrides the check with it (Compose restarts nothing).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
CMD ["shiftbot", "run"]
