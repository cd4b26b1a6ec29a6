# syntax=docker/dockerfile:1
# bxnode: one border service's node.  Build:  docker build -t bxnode:0.1.0 .
#   (or: buildah build -t bxnode:0.1.0 .   /   podman build -t bxnode:0.1.0 .)
#
# - Two stages: the builder makes wheels of bxnode and its dependencies and installs them
#   into /opt/bxnode; the runtime stage copies only that virtual environment.
# - Runs as the unprivileged user bxnode (uid 10001), never root.
# - Read-only root filesystem: nothing is written outside the node directory
#   (/var/lib/bxnode, a volume) and /tmp (mount a tmpfs).  Byte code is compiled at build
#   time and PYTHONDONTWRITEBYTECODE stops Python from writing any at run time.
# - No keys inside: keys/ is excluded by .dockerignore and never copied.  Keys, the
#   database key, the PostgreSQL password and the field key come from mounted files
#   (secrets) at run time.  The shipped Rego policy (no agreements) is in
#   /opt/bxnode/policies for 'bxnode init --policy-dir'.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml ./
COPY node ./node
RUN python -m venv /opt/bxnode/venv \
 && /opt/bxnode/venv/bin/pip install --no-cache-dir /src \
 && /opt/bxnode/venv/bin/python -m compileall -q /opt/bxnode/venv \
 && /opt/bxnode/venv/bin/bxnode --help > /dev/null
COPY policies/bxnode/*.rego /opt/bxnode/policies/bxnode/
RUN rm -f /opt/bxnode/policies/bxnode/*_test.rego \
 && printf '{"bxnode": {"agreements": []}}\n' > /opt/bxnode/policies/data.json

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="border-exchange-node" \
      org.opencontainers.image.description="bxnode: signed, policy-governed border-data exchange between sovereign nodes" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
RUN groupadd --system --gid 10001 bxnode \
 && useradd --system --uid 10001 --gid bxnode --home-dir /var/lib/bxnode \
            --shell /usr/sbin/nologin --no-create-home bxnode \
 && install -d -o bxnode -g bxnode -m 0700 /var/lib/bxnode
COPY --from=build /opt/bxnode /opt/bxnode
ENV PATH=/opt/bxnode/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BXNODE_HOME=/var/lib/bxnode
USER 10001:10001
WORKDIR /var/lib/bxnode
VOLUME ["/var/lib/bxnode"]
EXPOSE 50051
# The peer port needs a client certificate: the check calls it with the node's own.
HEALTHCHECK --interval=15s --timeout=6s --start-period=20s --retries=3 \
  CMD ["bxnode", "health", "--timeout", "5"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["bxnode"]
CMD ["serve", "--node-dir", "/var/lib/bxnode"]
