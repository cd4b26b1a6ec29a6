#!/usr/bin/env bash
# Run the buf CLI (installed from npm as @bufbuild/buf into .cache/buf) on proto/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=.cache/buf/node_modules/.bin/buf
if [ ! -x "$BUF" ]; then
  mkdir -p .cache/buf
  npm install --silent --prefix .cache/buf @bufbuild/buf@1 >/dev/null
fi
cd proto && "../$BUF" "$@"
