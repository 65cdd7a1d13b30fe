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
# pip's `berth` script starts a full interpreter (site and its .pth files)
# and imports berth for every command; the launcher starts a bare one that
# hands the command to a warm berth (berth/cli/launcher.py says how).
(cd / && python3 - <<'PY'
from importlib.metadata import distribution
from berth.cli.launcher import script
[path] = [f.locate() for f in distribution("berth").files if f.name == "berth" and f.parts[-2] == "bin"]
path.write_text(script())
path.chmod(0o755)
PY
)
