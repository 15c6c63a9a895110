#!/bin/sh
# A throwaway CA and one certificate per domain (SAN D and *.D, EKU
# serverAuth only) in /certs, made once: an existing ca.crt is kept.
set -eu
cd /certs
if [ -f ca.crt ]; then
  echo "certificates already in /certs"
  exit 0
fi
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout ca.key -out ca.crt -days 365 -subj "/CN=parley compose lab ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
for domain in parley.test prosody.test; do
  printf 'subjectAltName=DNS:%s,DNS:*.%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' \
    "$domain" "$domain" > "$domain.ext"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$domain.key" -out "$domain.csr" -subj "/CN=$domain"
  openssl x509 -req -in "$domain.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
    -extfile "$domain.ext" -out "$domain.crt"
done
# Prosody runs as root in its container (run_as_root) and reads the keys directly.
chmod 0644 ./*.crt
chmod 0640 ./*.key
echo "certificates written to /certs"
