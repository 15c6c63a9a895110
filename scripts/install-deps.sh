#!/usr/bin/env bash
# Installs the Debian 12 packages Parley needs, only those missing.
# Usage: scripts/install-deps.sh [build|test]
#   build: what ./run.sh needs to build and run parleyd
#   test:  also the test clients, peers and the fuzzing toolchain
set -euo pipefail

build_packages=(
  build-essential cmake ninja-build ccache pkg-config openssl
  libboost-dev libssl-dev libexpat1-dev libc-ares-dev libidn-dev libsqlite3-dev
  libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  libmysqlcppconn-dev
)
test_packages=(
  libgtest-dev libgmock-dev libstrophe-dev python3-slixmpp go-sendxmpp clang libclang-rt-14-dev
  unbound dnsutils prosody lua-unbound python3-dnspython
  mariadb-server mariadb-client
  biboumi ngircd
  python3-aiohttp
)

wanted=("${build_packages[@]}")
if [[ "${1:-build}" == test ]]; then
  wanted+=("${test_packages[@]}")
fi

missing=()
for package in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "Installing: ${missing[*]}"
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
