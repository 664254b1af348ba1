#!/usr/bin/env bash
# Starts a moto server (a DynamoDB- and API Gateway-compatible server from PyPI) on loopback,
# one request at a time (see scripts/moto_server.py),
# for the wxkf-aws tests, installing `moto[server]` into .venv first if it is missing. Running
# it again while the server answers changes nothing. Prints the endpoint URL on stdout.
#
#   MOTO_PORT   port to listen on (default 5005)
#
# Usage: export WXKF_MOTO_ENDPOINT="$(scripts/moto.sh)"
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
port="${MOTO_PORT:-5005}"
endpoint="http://127.0.0.1:${port}"
venv="${root}/.venv"

answers() {
    curl -sf -o /dev/null "${endpoint}/moto-api/" 2>/dev/null
}

if answers; then
    echo "${endpoint}"
    exit 0
fi

if [ ! -x "${venv}/bin/moto_server" ]; then
    [ -x "${venv}/bin/python" ] || python3 -m venv "${venv}" >&2
    "${venv}/bin/pip" install --quiet 'moto[server]' >&2
fi

# scripts/moto_server.py serializes requests, as DynamoDB serializes transactions.
nohup "${venv}/bin/python" "${root}/scripts/moto_server.py" "${port}" >"${venv}/moto-${port}.log" 2>&1 &
for _ in $(seq 1 100); do
    if answers; then
        echo "${endpoint}"
        exit 0
    fi
    sleep 0.2
done
echo "moto_server did not answer on ${endpoint} within 20 s; see ${venv}/moto-${port}.log" >&2
exit 1
