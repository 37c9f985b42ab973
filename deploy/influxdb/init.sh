#!/bin/bash
# InfluxDB 2.x first-start script for Foyer (deploy/influxdb/README.md).
# The official image runs it once, after the initial setup (org, admin, bucket
# foyer-raw from DOCKER_INFLUXDB_INIT_*), with the influx CLI signed in as the admin.
# Elsewhere: INFLUX_HOST, INFLUX_TOKEN (all-access), INFLUX_ORG set, then run it.
#   - bucket foyer-rollup, infinite retention (the downsampled water use);
#   - DBRP mappings: db=foyer rp=raw -> foyer-raw (default), rp=rollup -> foyer-rollup,
#     so Foyer's v1 API calls (/write?db=foyer, /query?db=foyer) reach the buckets;
#   - a token for Foyer, read and write on those two buckets only, written to
#     $TOKEN_FILE (default /run/foyer-influx/token) and never printed;
#   - a read-only v1 (InfluxQL) account `grafana` if GRAFANA_INFLUX_PASSWORD is set.
set -euo pipefail
org=${DOCKER_INFLUXDB_INIT_ORG:-${INFLUX_ORG:?set INFLUX_ORG}}
raw=foyer-raw
rollup=foyer-rollup
token_file=${TOKEN_FILE:-/run/foyer-influx/token}

bucket_id() {
  influx bucket list --org "$org" --name "$1" --hide-headers | cut -f1
}

if [ -z "$(bucket_id "$raw" 2>/dev/null || true)" ]; then
  influx bucket create --org "$org" --name "$raw" --retention "${INFLUX_RAW_RETENTION:-730d}"
fi
if [ -z "$(bucket_id "$rollup" 2>/dev/null || true)" ]; then
  influx bucket create --org "$org" --name "$rollup" --retention 0   # 0: infinite
fi
raw_id=$(bucket_id "$raw")
rollup_id=$(bucket_id "$rollup")

if ! influx v1 dbrp list --org "$org" --db foyer --hide-headers | grep -q .; then
  influx v1 dbrp create --org "$org" --db foyer --rp raw --bucket-id "$raw_id" --default
  influx v1 dbrp create --org "$org" --db foyer --rp rollup --bucket-id "$rollup_id"
fi

if [ ! -s "$token_file" ]; then
  mkdir -p "$(dirname "$token_file")"
  token=$(influx auth create --org "$org" --description foyer --json \
    --read-bucket "$raw_id" --write-bucket "$raw_id" \
    --read-bucket "$rollup_id" --write-bucket "$rollup_id" |
    sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
  [ -n "$token" ] || { echo "init.sh: no token in influx auth create's answer" >&2; exit 1; }
  # The volume is mounted only into InfluxDB and Foyer's containers (another uid):
  # world-readable inside it, never printed.
  (umask 022; printf '%s' "$token" > "$token_file.tmp")
  chmod 0444 "$token_file.tmp"
  mv "$token_file.tmp" "$token_file"
fi

if [ -n "${GRAFANA_INFLUX_PASSWORD:-}" ] &&
  ! influx v1 auth list --org "$org" --username grafana --hide-headers 2>/dev/null | grep -q .; then
  influx v1 auth create --org "$org" --username grafana --password "$GRAFANA_INFLUX_PASSWORD" \
    --read-bucket "$raw_id" --read-bucket "$rollup_id" >/dev/null
fi
