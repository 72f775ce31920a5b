#!/usr/bin/env bash
# Dev check for the Node-RED peer of the benchmark suite: starts the test IdP (tests/idp), a tiny
# python stub API and Node-RED with bench/peers/flows.json, posts to /run and prints the answer.
#
#   bench/peers/check.sh [N]     # N extra POST /run requests, 16 in parallel (default 0)
#
# Ports: IDP_PORT (9411), STUB_PORT (9412), NR_PORT (9413). Needs bash, curl, node 20, python3.
# Installs bench/peers/node_modules and tests/idp/node_modules with npm ci if they are missing.
set -euo pipefail

N="${1:-0}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
IDP_PORT="${IDP_PORT:-9411}"
STUB_PORT="${STUB_PORT:-9412}"
NR_PORT="${NR_PORT:-9413}"

(cd "$here" && test -d node_modules || npm ci --no-audit --no-fund)
(cd "$root/tests/idp" && test -d node_modules || npm ci --no-audit --no-fund)

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
touch "$tmp/marker"

wait_for() { # wait_for <what> <command...>: retry for up to 20 s
  local what="$1"; shift
  for _ in $(seq 1 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for $what" >&2
  return 1
}

# --- test IdP -------------------------------------------------------------------------------------
IDP_PORT="$IDP_PORT" IDP_IGNORE_STDIN=1 node "$root/tests/idp/server.mjs" >"$tmp/idp.out" 2>"$tmp/idp.err" &
pids+=($!)
wait_for "the IdP" grep -q '^IDP_READY ' "$tmp/idp.out"
issuer="$(sed -n 's/^IDP_READY //p' "$tmp/idp.out")"
curl -sf -X POST "$issuer/_test/clients" -H 'content-type: application/json' \
  -d '{"metadata":{"client_id":"bench-cc","client_secret":"bench-cc-secret","grant_types":["client_credentials"],"redirect_uris":[],"response_types":[],"scope":"api:read"}}' \
  >/dev/null

# --- stub API: GET /data needs any bearer token -----------------------------------------------------
cat >"$tmp/stub.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b'{"user":{"id":42,"name":"Bench User"},"items":[1,2,3]}'

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        if self.path != "/data":
            self.reply(404, b'{"error":"not found"}')
        elif not (auth.startswith("Bearer ") and auth[7:].strip()):
            self.reply(401, b'{"error":"unauthorized"}')
        else:
            self.reply(200, BODY)

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
python3 "$tmp/stub.py" "$STUB_PORT" 2>"$tmp/stub.err" &
pids+=($!)
wait_for "the stub API" curl -s -o /dev/null "http://127.0.0.1:$STUB_PORT/data"

# --- Node-RED -----------------------------------------------------------------------------------
mkdir "$tmp/userdir"
start_ns="$(date +%s%N)"
NR_PORT="$NR_PORT" IDP_TOKEN_URL="$issuer/token" CLIENT_ID=bench-cc CLIENT_SECRET=bench-cc-secret \
  SCOPE=api:read STUB_URL="http://127.0.0.1:$STUB_PORT" \
  node "$here/node_modules/node-red/red.js" --settings "$here/settings.js" --userDir "$tmp/userdir" \
  >"$tmp/nr.out" 2>"$tmp/nr.err" &
pids+=($!)
if ! wait_for "Node-RED /ready" curl -sf "http://127.0.0.1:$NR_PORT/ready"; then
  cat "$tmp/nr.out" "$tmp/nr.err" >&2
  exit 1
fi
echo "Node-RED ready after $(( ($(date +%s%N) - start_ns) / 1000000 )) ms"

status=0
answer="$(curl -s -m 10 -X POST "http://127.0.0.1:$NR_PORT/run")" || status=$?
echo "POST /run -> $answer"
[ "$answer" = '{"name":"Bench User"}' ] || { echo "unexpected answer (curl status $status)" >&2; status=1; }

if [ "$N" -gt 0 ]; then
  t0="$(date +%s%N)"
  mkdir "$tmp/answers"
  seq 1 "$N" | xargs -P 16 -I{} curl -s -m 10 -X POST "http://127.0.0.1:$NR_PORT/run" -o "$tmp/answers/{}" || true
  ok=0
  for f in "$tmp/answers"/*; do
    if [ "$(cat "$f" 2>/dev/null)" = '{"name":"Bench User"}' ]; then ok=$((ok + 1)); fi
  done
  echo "$N more POST /run (16 parallel): $ok OK in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  [ "$ok" -eq "$N" ] || status=1
fi

tokens="$(curl -s "$issuer/_test/stats?client_id=bench-cc" | grep -o '"grant_type"' | wc -l)"
echo "token requests seen by the IdP: $tokens (for $((N + 1)) flow requests)"

if [ -s "$tmp/nr.out" ] || [ -s "$tmp/nr.err" ]; then
  echo "--- Node-RED stdout/stderr:"; cat "$tmp/nr.out" "$tmp/nr.err"
fi
written="$(find "$here" -path "$here/node_modules" -prune -o -newer "$tmp/marker" -print)"
if [ -n "$written" ]; then echo "files written into bench/peers at runtime:"; echo "$written"; status=1; fi
echo "userDir after the run: $(ls -A "$tmp/userdir" | tr '\n' ' ')"
exit "$status"
