#!/usr/bin/env bash
# tests/packaging/test_systemd_unit.py checks deployments/bxnode.service (and its commented
# variants for a USB token) with `systemd-analyze verify`: it needs Debian's `systemd`
# package (no running systemd). Install it when it is missing and we may (root with
# apt-get); otherwise say the test will be skipped. Never fails `make test`.
command -v systemd-analyze >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 \
    && apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1 \
    && command -v systemd-analyze >/dev/null 2>&1 && exit 0
fi
echo "note: systemd-analyze is not installed; the systemd unit test will be skipped" >&2
exit 0
