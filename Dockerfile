# syntax=docker/dockerfile:1
# Images for the production shape in docker-compose.yml. The quick start, the
# tests and CI do not use this file: they run the same processes from scripts/
# on one Debian machine (docs/operations.md).
#
#   docker build -t playground-app .                    web, worker, beat
#   docker build -t playground-labhost --target labhost .   a lab-host engine

# ---- frontend: the browser bundle (static/build/) ---------------------------
FROM node:20-bookworm-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
COPY frontend/ ./
RUN node build.mjs

# ---- labhost: Debian's Docker Engine, user namespaces remapped --------------
# Runs the sandboxes. A Docker Engine inside a container needs `privileged`;
# most operators run the lab-host engines on their own machines instead (see
# docker-compose.yml). The image also carries the sandbox image recipes, so
# `docker compose exec labhost /opt/playground/scripts/build-images.sh` builds
# them into this engine without any registry.
FROM debian:bookworm-slim AS labhost
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        docker.io crun tini iptables uidmap debootstrap debian-archive-keyring ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/common.sh scripts/build-images.sh /opt/playground/scripts/
COPY sandboxes/images/ /opt/playground/sandboxes/images/
ENV PLAYGROUND_STATE_DIR=/var/lib/playground \
    PLAYGROUND_ENGINE_SOCKET=unix:///run/labhost/docker.sock
VOLUME ["/var/lib/docker", "/var/lib/playground"]
ENTRYPOINT ["/usr/bin/tini", "--"]
# --group 10001: the app image's group may use the socket (which is root on
# this lab host: keep the volume holding it private to the playground).
CMD ["/usr/sbin/dockerd", \
     "--host", "unix:///run/labhost/docker.sock", "--group", "10001", \
     "--userns-remap", "default", "--bridge", "none", \
     "--default-address-pool", "base=10.213.0.0/16,size=24", \
     "--log-opt", "max-size=1m", "--log-opt", "max-file=1"]

# ---- app: Daphne, Celery worker and beat (the default target) ---------------
FROM python:3.11-slim AS app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=playground.settings \
    DJANGO_DEBUG=false \
    PLAYGROUND_STATE_DIR=/var/lib/playground \
    DJANGO_STATIC_ROOT=/app/staticfiles
RUN groupadd --system --gid 10001 playground \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin playground \
    && install -d -o playground -g playground /var/lib/playground
WORKDIR /app
COPY requirements.txt ./
# psycopg: the PostgreSQL driver, needed only here (the quick start, tests and
# CI use SQLite, so requirements.txt does not carry it).
RUN pip install -r requirements.txt "psycopg[binary]==3.3.9"
COPY . .
COPY --from=frontend /src/static/build/ /app/static/build/
# collectstatic needs settings, not secrets or services: a throwaway key.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0
USER playground
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "playground.asgi:application"]
