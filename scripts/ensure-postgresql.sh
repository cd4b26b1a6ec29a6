#!/usr/bin/env bash
# The PostgreSQL tests start a private throwaway cluster from Debian's server binaries
# (/usr/lib/postgresql/<major>/bin: initdb, pg_ctl, postgres, pg_dump). Install Debian's
# `postgresql` package when they are missing and we may (root with apt-get); otherwise
# say the PostgreSQL tests will be skipped. Never fails `make test`.
for bin in /usr/lib/postgresql/*/bin/initdb; do
  [ -x "$bin" ] && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 \
    && apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 && exit 0
fi
echo "note: PostgreSQL server binaries are not installed; the PostgreSQL tests will be skipped" >&2
exit 0
