#!/usr/bin/env bash
# Installs the Debian packages the local node of tests/node needs (containerd, runc, the CNI plugins, iptables,
# conntrack) and that scripts/install-node.sh builds its images with (buildah, debootstrap, gcc and the static C
# library for the pause container). Only what is missing, only as root; otherwise prints the command to run.
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables conntrack buildah debootstrap gcc libc6-dev)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system packages: all present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "system packages missing: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  echo "(the node tests skip without them)" >&2
  exit 0
fi
start=$SECONDS
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "system packages: installed ${missing[*]} in $((SECONDS - start))s"
