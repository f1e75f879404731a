#!/bin/bash
# Debian packages evmesh builds and tests with. Safe to re-run: installs only what is missing.
set -euo pipefail
pkgs=(bazel-bootstrap g++ libgtest-dev libbenchmark-dev nlohmann-json3-dev zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev python3-venv rabbitmq-server default-jre-headless maven)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
