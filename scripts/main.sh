#!/usr/bin/env bash
# The main job: the tutorial "How To Containerize Python Web Applications"
# end to end, with berth in place of docker, on a fresh Debian 12 machine
# (as root).  Installs what is needed, makes the base image (no registry:
# debootstrap, cached), builds my_application_img from examples/tutorial,
# runs my_application_instance with its port published, fetches
# "Hello World!" through it, and leaves it running to attach to.
# Safe to run again: cached steps return at once, and the instance is
# replaced.
#
#   PORT=8080 bash scripts/main.sh     # publish on another port than 80
#   BERTH_ROOT=/tmp/state bash ...     # another state root
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
# curl fetches the page, as a reader of the tutorial would.
if ! command -v curl >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null
fi

# pip puts the berth command on PATH; where its script directory is not, the module does the same.
command -v berth >/dev/null || berth() { python3 -m berth "$@"; }

step() {
    printf '\n\033[1m$ %s\033[0m\n' "$*"
    "$@"
}

port_taken() {
    [ -n "$(ss -Hltn "sport = :$1")" ]
}

# The instance of an earlier run goes first: it may hold the port.
berth rm -f my_application_instance >/dev/null 2>&1 || true

PORT=${PORT:-80}
if port_taken "$PORT"; then
    wanted=$PORT
    PORT=8080
    while port_taken "$PORT"; do PORT=$((PORT + 1)); done
    echo "Port $wanted is taken on this machine; publishing on $PORT instead." >&2
fi

# 1. A base image made here, like Docker's old contrib/mkimage scripts:
#    debootstrap once (about a minute), then from the cache.
step berth mkimage debian:bookworm

# 2. The tutorial's Dockerfile.  --host-ca lets pip's HTTPS downloads from
#    PyPI trust this host's CA bundle (for a TLS-intercepting proxy); the
#    bundle is mounted for each RUN step only, never committed.
cd examples/tutorial
step berth build --host-ca -t my_application_img .

# 3. The tutorial's `docker run -name my_application_instance -p 80:80 -i -t
#    my_application_img`, detached (-d) so this script can go on; attach
#    to its terminal later.
step berth run -d --name my_application_instance -p "$PORT:80" -i -t my_application_img
step berth ps --filter name=my_application_instance
step berth port my_application_instance

# 4. "Hello World!" through the published port.
url="http://127.0.0.1:$PORT/"
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && break
    sleep 0.2
done
step curl -fsS "$url"
echo

cat <<EOF

my_application_instance is serving on port $PORT (http://127.0.0.1:$PORT/).

  berth attach my_application_instance    attach to its terminal
  Ctrl-P Ctrl-Q                           detach again, leaving it running
  berth logs my_application_instance      what it printed
  berth stop my_application_instance      stop it
  berth rm my_application_instance        remove it
  berth rmi my_application_img            remove the image

Several clients' applications side by side, each in its own container,
unable to reach one another: bash examples/clients/run.sh
EOF
