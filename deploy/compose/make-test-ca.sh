#!/usr/bin/env bash
# A private CA and a server certificate for Mosquitto's TLS listener, for a test set-up.
# In production use certificates from your CA (or ACME) in ./certs: ca.crt, server.crt,
# server.key.  Devices must trust ca.crt.  Usage: ./make-test-ca.sh mqtt.example.fr
set -euo pipefail
host=${1:?usage: $0 HOSTNAME}
dir=$(dirname "$0")/certs
mkdir -p "$dir"
cd "$dir"
umask 077
openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=Foyer test CA" \
  -keyout ca.key -out ca.crt
openssl req -newkey rsa:3072 -nodes -subj "/CN=$host" -keyout server.key -out server.csr
printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$host" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
  -extfile server.ext -out server.crt
rm -f server.csr server.ext
# Mosquitto (uid 1883 in the image) must read the key; the CA key stays private.
chmod 0644 ca.crt server.crt
chmod 0640 server.key
echo "certs in $PWD: give devices ca.crt; keep ca.key offline" >&2
