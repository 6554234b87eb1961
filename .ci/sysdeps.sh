#!/usr/bin/env bash
# Install the system programs the test suite drives for real. Idempotent and quick
# when everything is present. Needs root (CI and the dev machines run as root).
set -euo pipefail
need=()
have_postgres() {
  command -v postgres >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null
}
have_postgres || need+=(postgresql)
# the dashboard's browser tests (plugins/llmos-monitor) drive Debian's Chromium through
# Playwright; Playwright's own browser download is never used
[ -x /usr/bin/chromium ] || need+=(chromium fonts-liberation)
# the scale-out test (plugins/llmos-serve) puts real `llmos serve` replicas behind haproxy
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "sysdeps: missing ${need[*]}; install them (sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "sysdeps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
