#!/usr/bin/env bash
# Installs what is missing, builds Parley (Release) and runs parleyd in the
# foreground on 127.0.0.1 for the domain localhost, with SQLite under ./var/.
set -euo pipefail
cd "$(dirname "$0")"

scripts/install-deps.sh build

build=build/release
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPARLEY_TESTS=OFF >/dev/null
cmake --build "$build" --target parleyd parleyctl

mkdir -p var/certs
if [[ ! -f var/certs/localhost.crt ]]; then
  echo "Generating a self-signed certificate for localhost in var/certs/"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
    -keyout var/certs/localhost.key -out var/certs/localhost.crt 2>/dev/null
  chmod 600 var/certs/localhost.key
fi
[[ -f config/parley.yml ]] || cp config/parley.example.yml config/parley.yml

cat <<MSG

Parley is starting on 127.0.0.1 (c2s 5222 STARTTLS, 5223 Direct TLS) for the domain localhost.
In another terminal, add a user:
  $build/tools/parleyctl --config config/parley.yml register alice localhost secret
then log in as alice@localhost with any XMPP client (accept the self-signed certificate).
Stop with Ctrl-C.

MSG
exec "$build/server/parleyd" --config config/parley.yml
