#!/usr/bin/env bash
# The main job.  Until the tutorial app can be built and served (issue 5 of
# 7), this shows the image workflow end to end on a fresh machine: a base
# image made here from busybox, tagged, inspected, saved and loaded back.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
ROOT=${BERTH_ROOT:-/var/lib/berth}
berth() { python3 -m berth --root "$ROOT" "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/busybox.tar" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from conftest import busybox_rootfs_tar
busybox_rootfs_tar(Path(sys.argv[1]))
PY
set -x
berth import -c 'CMD ["sh"]' -m "busybox base made here" "$work/busybox.tar" busybox:latest
berth tag busybox:latest my_application_img:latest
berth images
berth history busybox
berth inspect -f '{{.Id}} {{json .Config.Cmd}}' my_application_img
berth save -o "$work/images.tar" busybox my_application_img
berth rmi my_application_img busybox
berth load -i "$work/images.tar"
berth images
berth system df
berth system check
