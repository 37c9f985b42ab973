#!/usr/bin/env bash
# Prepares a fresh Debian machine for `make demo` / `make test`: the system servers Foyer
# talks to (Mosquitto, InfluxDB 1.x, libcoap's client) and a venv with Foyer and its deps.
set -euo pipefail
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v coap-client-notls >/dev/null 2>&1 || need+=(libcoap3-bin)
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
