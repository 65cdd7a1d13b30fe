#!/usr/bin/env bash
# The tutorial's opening promise: applications of different clients side by
# side on one host, each in its own container and on its own port, none able
# to reach another.  Containers on berth's default bridge talk to the host
# and the outside world, but not to each other (inter-container traffic is
# off, as dockerd --icc=false): only the published ports lead in.
#
#   bash examples/clients/run.sh          (as root, after scripts/install.sh)
set -euo pipefail
cd "$(dirname "$0")"

step() {
    printf '\n\033[1m$ %s\033[0m\n' "$*"
    "$@"
}

command -v curl >/dev/null || { echo "curl is needed: apt-get install curl" >&2; exit 1; }
berth mkimage -q debian:bookworm >/dev/null
declare -A PORTS=([client_a]=8001 [client_b]=8002)
for client in client_a client_b; do
    berth rm -f "$client" >/dev/null 2>&1 || true
    step berth build -q -t "${client}_img" "$client"
    step berth run -d --name "$client" -p "${PORTS[$client]}:80" "${client}_img"
done

for client in client_a client_b; do
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:${PORTS[$client]}/" 2>/dev/null && break
        sleep 0.2
    done
    step curl -fsS "http://127.0.0.1:${PORTS[$client]}/"
    echo
done

# From inside each container, try the other's address and port: exit 0
# when connected, 3 when not within 3 s.
connect='import socket, sys
s = socket.socket()
s.settimeout(3)
sys.exit(0 if s.connect_ex((sys.argv[1], 80)) == 0 else 3)'
for pair in "client_a client_b" "client_b client_a"; do
    set -- $pair
    ip=$(berth inspect -f '{{.NetworkSettings.IPAddress}}' "$2")
    rc=0
    berth exec "$1" python3 -c "$connect" "$ip" || rc=$?
    case $rc in
        0) echo "$1 reached $2 at $ip:80: the clients are NOT isolated" >&2; exit 1 ;;
        3) echo "$1 cannot reach $2 at $ip:80" ;;
        *) echo "berth exec $1 failed ($rc)" >&2; exit 1 ;;
    esac
done

cat <<EOF

client_a answers on port ${PORTS[client_a]}, client_b on ${PORTS[client_b]}; neither reaches the other.
Stop and remove them with: berth rm -f client_a client_b
EOF
