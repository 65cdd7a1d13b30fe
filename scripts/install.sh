#!/usr/bin/env bash
# Installs berth and the system packages it and its tests use.  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(busybox-static debootstrap docker.io runc crun tmux skopeo docker-registry curl docker-compose
      iproute2 nftables apache2-utils)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
