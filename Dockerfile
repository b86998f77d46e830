# flux-api's image: gunicorn on 0.0.0.0:8000, images and state in the /data volume, settings from
# the environment (or an env file, as outside a container). docs/container.md says how to build
# and run it; tests/system/test_container.py builds and runs this file with podman.
#
#   docker build -t flux-api .
#   docker build --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt -t flux-api .
#
# The second form is for a network whose proxy inspects TLS: apt and pip in the build trust the
# certificates in that file as well as their own (nothing of it stays in the image).

# Debian's python3 in both stages: the venv made in the first runs unchanged in the second.
FROM debian:bookworm-slim AS build

# apt: Debian's mirrors are plain http (packages are checked by their signatures), so the extra
# certificates only matter to a sources list on https.
RUN --mount=type=secret,id=ca-certificates \
    set -eu; \
    ca=/run/secrets/ca-certificates; \
    if [ -s "$ca" ]; then set -- -o "Acquire::https::CAInfo=$ca"; fi; \
    apt-get "$@" update; \
    apt-get "$@" install -y --no-install-recommends python3 python3-venv; \
    python3 -m venv /opt/flux-api

COPY requirements.txt requirements-mcp.txt /tmp/requirements/
# pip checks TLS against its own bundle; with the secret, against that bundle plus the secret's
# certificates. Every package has a wheel: no compiler is installed, none is needed. pip and
# setuptools go once it is done: nothing imports them at run time (25 MB).
RUN --mount=type=secret,id=ca-certificates \
    set -eu; \
    ca=/run/secrets/ca-certificates; \
    if [ -s "$ca" ]; then \
      bundle=$(/opt/flux-api/bin/python -c 'from pip._vendor import certifi; print(certifi.where())'); \
      cat "$bundle" "$ca" > /tmp/pip-ca.pem; \
      export PIP_CERT=/tmp/pip-ca.pem; \
    fi; \
    /opt/flux-api/bin/pip install --no-cache-dir --disable-pip-version-check \
      -r /tmp/requirements/requirements.txt -r /tmp/requirements/requirements-mcp.txt; \
    rm -f /tmp/pip-ca.pem; \
    /opt/flux-api/bin/pip uninstall -q -y --disable-pip-version-check pip setuptools

FROM debian:bookworm-slim

# Python and nothing else; the service runs as a user of its own, with a fixed uid so that a host
# directory mounted on /data can be given to it (chown 10001).
RUN --mount=type=secret,id=ca-certificates \
    set -eu; \
    ca=/run/secrets/ca-certificates; \
    if [ -s "$ca" ]; then set -- -o "Acquire::https::CAInfo=$ca"; fi; \
    apt-get "$@" update; \
    apt-get "$@" install -y --no-install-recommends python3; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 flux-api; \
    useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin flux-api; \
    mkdir /data; \
    chown flux-api:flux-api /data

COPY --from=build /opt/flux-api /opt/flux-api
# The code belongs to root: the service can read it, not change it.
WORKDIR /app
COPY app.py gunicorn.conf.py ./
COPY flux_api ./flux_api
COPY deploy/container/healthcheck.py /usr/local/lib/flux-api/healthcheck.py
RUN /opt/flux-api/bin/python -m compileall -q /app

# BIND on every address: the container's network is its own, and `-p` chooses what is published.
# FORWARDED_ALLOW_IPS stays loopback: set it to the proxy's address when one sits in front.
ENV PATH=/opt/flux-api/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    BIND=0.0.0.0:8000
VOLUME /data
EXPOSE 8000
USER flux-api

# /healthz answers 503 only when this node cannot keep an image; the probe reads BIND's port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/lib/flux-api/healthcheck.py"]

# gunicorn as PID 1: SIGTERM lets in-flight generations finish (GUNICORN_GRACEFUL_TIMEOUT, 130 s
# by default), so stop the container with a longer timeout than docker's 10 s (`-t 170`;
# compose.yaml sets stop_grace_period). The MCP server is the second command of this image:
# `python -m flux_api.mcp --http`.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
