# shiftbot: one asyncio process (adapters, HTTP server, scheduler).
# Build: docker build -t shiftbot .   Run: docker run -v /etc/shiftbot:/etc/shiftbot shiftbot
# In the mounted shiftbot.yaml set bot.database to a writable place, e.g.
# sqlite:////var/lib/shiftbot/shiftbot.db, or a PostgreSQL URL.
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
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"
CMD ["shiftbot", "run"]
