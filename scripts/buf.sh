#!/usr/bin/env bash
# Run the buf CLI (installed from npm as @bufbuild/buf into .cache/buf) on proto/.
#   bash scripts/buf.sh lint
#   bash scripts/buf.sh breaking-previous   # proto/ against the previous commit's proto/
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=.cache/buf/node_modules/.bin/buf
if [ ! -x "$BUF" ]; then
  mkdir -p .cache/buf
  npm install --silent --prefix .cache/buf @bufbuild/buf@1 >/dev/null
fi
if [ "${1:-}" = "breaking-previous" ]; then
  # A wire-breaking change (a field removed or renumbered, a type changed, a method gone:
  # buf's FILE rules, proto/buf.yaml) must not land unnoticed.  The working tree's protos
  # are compared with HEAD~1's, read from the repository itself (no network).
  if ! git rev-parse --verify -q 'HEAD~1^{commit}' >/dev/null; then
    echo "buf breaking: skipped, no previous commit to compare with (first commit or a shallow clone)"
    exit 0
  fi
  if ! git cat-file -e 'HEAD~1:proto/buf.yaml' 2>/dev/null; then
    echo "buf breaking: skipped, the previous commit has no proto/buf.yaml"
    exit 0
  fi
  cd proto && "../$BUF" breaking --against '../.git#ref=HEAD~1,subdir=proto'
  echo "buf breaking: proto/ is wire-compatible with $(git rev-parse --short HEAD~1)"
  exit 0
fi
cd proto && "../$BUF" "$@"
