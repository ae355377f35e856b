#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine: system packages (redis-server), the virtualenv and the
# pinned Python dependencies. Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "bootstrap: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v redis-server >/dev/null; then
  echo "bootstrap: installing redis-server (Debian package)"
  apt_install redis-server
  # The package may start a system instance that writes to disk: ours runs on its own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    as_root systemctl stop redis-server || true
    as_root systemctl disable redis-server >/dev/null 2>&1 || true
  fi
fi

# Headless browser for the public pages' end-to-end test.
if ! command -v chromium >/dev/null; then
  echo "bootstrap: installing chromium (Debian package)"
  apt_install chromium fonts-dejavu-core
fi
# Load generator of `make bench` (the API benchmark).
if ! command -v wrk >/dev/null; then
  echo "bootstrap: installing wrk (Debian package)"
  apt_install wrk
fi
# promtool (`make test` checks and unit-tests the alert rules with it) and the Prometheus
# server of the real-scrape test.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  echo "bootstrap: installing prometheus (Debian package: promtool and the server)"
  apt_install prometheus
  # The package may start a system instance (port 9090, data on disk): the tests start their
  # own. In a container without systemd nor a runlevel, its postinst starts nothing.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    as_root systemctl stop prometheus || true
    as_root systemctl disable prometheus >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ] && [ -f /run/prometheus/prometheus.pid ]; then
    as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi
# axe-core (npm) for the pages' accessibility test: the version and integrity pinned in
# tests/e2e/axe/package-lock.json (`npm ci` checks them), installed into .run/node/ (ignored).
if ! command -v npm >/dev/null; then
  echo "bootstrap: installing nodejs and npm (Debian packages)"
  apt_install nodejs npm
fi
axe_stamp=".run/node/.installed-$(sha256sum tests/e2e/axe/package-lock.json | cut -c1-16)"
if [ ! -f "$axe_stamp" ] || [ ! -f .run/node/node_modules/axe-core/axe.min.js ]; then
  echo "bootstrap: installing axe-core (npm) into .run/node"
  rm -rf .run/node
  mkdir -p .run/node
  cp tests/e2e/axe/package.json tests/e2e/axe/package-lock.json .run/node/
  npm ci --prefix .run/node --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  touch "$axe_stamp"
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "bootstrap: Python 3.11 is required ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    apt_install python3-venv
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
fi

stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing pinned dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "pip==25.3"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev]"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
