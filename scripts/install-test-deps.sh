#!/usr/bin/env bash
# Installs the real peers the tests use — redis-server (and redis-cli),
# kcat, prometheus (and promtool) and chromium — from Debian's packages when they are missing and we are root.
# Without root, or off Debian, it says what is missing: tests that need a
# missing tool skip loudly, or fail when CI=true.
set -u
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: installing $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq $pkgs >/dev/null || {
    echo "install-test-deps: apt-get install $pkgs failed" >&2
    [ "${CI:-}" = true ] && exit 1
  }
else
  echo "install-test-deps: missing $pkgs; install them (apt-get install $pkgs) or the tests that need them will skip" >&2
  [ "${CI:-}" = true ] && exit 1
fi
exit 0
