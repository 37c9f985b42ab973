#!/usr/bin/env bash
# Prepares a fresh Debian machine for `make demo` / `make test`: the system servers Foyer
# talks to (Mosquitto, InfluxDB 1.x, PostgreSQL, libcoap's client) and a venv with Foyer
# and its deps.
set -euo pipefail
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v coap-client-notls >/dev/null 2>&1 || need+=(libcoap3-bin)
# the registry contract tests start their own PostgreSQL (tests/servers.py): Debian keeps
# initdb and postgres in /usr/lib/postgresql/<version>/bin, off PATH
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 \
  || need+=(postgresql)
# aiocoap's DTLS server (coaps://, DTLS-PSK) needs DTLSSocket, built from source with autoconf
command -v autoreconf >/dev/null 2>&1 || need+=(autoconf)
command -v automake >/dev/null 2>&1 || need+=(automake)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
pyinc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -f "$pyinc/Python.h" ] || need+=(python3-dev)
# the technician page's browser tests drive Debian's Chromium through its own chromedriver
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# printed bills embed DejaVu Sans (billing/pdf.py); without it they fall back to Vera
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # the packages' init scripts may try to start system-wide servers; Foyer starts its own
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e ".[dev]"
touch "$VENV/.installed"
