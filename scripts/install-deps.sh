#!/usr/bin/env bash
# Installs every Debian 12 package Mycelium needs to build, test and
# benchmark. Safe to run again. Needs root (or sudo).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  SUDO=sudo
fi
PKGS=(
  build-essential cmake ninja-build pkg-config
  libcaf-dev libboost-dev libtoml11-dev libfmt-dev libssl-dev
  doctest-dev libcli11-dev libbenchmark-dev
  clang libclang-rt-14-dev
  python3 python3-dev python3-numpy python3-matplotlib pybind11-dev
  python3-pytest python3-pytest-asyncio mypy
  iproute2
  libzmq3-dev
  ocaml-nox ocaml-dune ocaml-findlib liblwt-ocaml-dev libalcotest-ocaml-dev libcryptokit-ocaml-dev
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
