#!/usr/bin/env bash
# The hardware-key tests (tests/integration/test_pkcs11*.py) sign with an Ed25519 key in a
# SoftHSM2 token they create in a temporary folder: they need Debian's `softhsm2`
# (libsofthsm2.so, which supports CKM_EDDSA, and softhsm2-util). Install it when it is
# missing and we may (root with apt-get); otherwise say the tests will be skipped.
# Never fails `make test`.
for lib in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do
  [ -f "$lib" ] && command -v softhsm2-util >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 \
    && apt-get install -y -qq --no-install-recommends softhsm2 >/dev/null 2>&1 && exit 0
fi
echo "note: SoftHSM2 is not installed; the PKCS#11 hardware-key tests will be skipped" >&2
exit 0
