#!/usr/bin/env bash
# The cross-language client test (tests/interop/test_node_client.py) runs a Node.js client
# (tests/interop/node) with @grpc/grpc-js, @grpc/proto-loader and protobufjs at the
# versions its package-lock.json pins. Install Debian's nodejs and npm when node is
# missing and we may (root with apt-get), then the client's packages with `npm ci` from
# the npm registry (no install scripts run). Otherwise say the test will be skipped.
# Never fails `make test`.
set -u
cd "$(dirname "$0")/.."
DIR=tests/interop/node
skip() {
  echo "note: $1; the Node.js client test will be skipped" >&2
  exit 0
}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null 2>&1
  fi
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
    || skip "node and npm are not installed"
fi
# npm ci leaves node_modules/.package-lock.json: current when newer than the lock file
if [ "$DIR/node_modules/.package-lock.json" -nt "$DIR/package-lock.json" ]; then
  exit 0
fi
npm ci --prefix "$DIR" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null \
  || skip "npm ci in $DIR failed"
exit 0
