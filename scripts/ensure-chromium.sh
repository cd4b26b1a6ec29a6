#!/usr/bin/env bash
# The audit report test and the console tests (tests/web) use headless Chromium (Debian's package).
# Install it when it is missing and we may (root with apt-get); otherwise say the test skips.
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null && exit 0
fi
echo "note: chromium is not installed; the HTML report rendering test and the console browser tests (tests/web) will be skipped" >&2
exit 0
