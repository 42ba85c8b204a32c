#!/usr/bin/env bash
# Installs what Switchboard needs to build and test, from Debian 12 packages.
# Idempotent: packages already present are skipped, so a second run takes seconds.
# Usage: scripts/install-deps.sh [--test]   (--test adds the test peers: curl, openssl, python3, prometheus)
set -euo pipefail

build_pkgs=(
  g++ cmake ninja-build ccache pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libcli11-dev libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libjemalloc-dev
  libprotobuf-dev protobuf-compiler zlib1g-dev
)
test_pkgs=(curl openssl python3 ca-certificates prometheus)  # prometheus brings promtool

want=("${build_pkgs[@]}")
[[ "${1:-}" == "--test" ]] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o DPkg::Lock::Timeout=300 --no-install-recommends)
if ! $sudo apt-get install "${apt_opts[@]}" "${missing[@]}"; then
  $sudo apt-get update -q
  $sudo apt-get install "${apt_opts[@]}" "${missing[@]}"
fi
