#!/usr/bin/env bash
# Smoke test for the test identity provider (dev aid; the Rust tests are the real tests).
# Starts server.mjs, walks every contract point with curl, exits non-zero on the first mismatch.
# Needs: bash, curl, node, openssl, base64.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PASS=0
fail() { echo "FAIL: $*" >&2; [[ -f "$WORK/idp.err" ]] && sed 's/^/  idp stderr: /' "$WORK/idp.err" >&2; exit 1; }
ok() { PASS=$((PASS + 1)); echo "ok   $*"; }
expect_eq() { [[ "$1" == "$2" ]] || fail "$3: expected '$2', got '$1'"; ok "$3"; }
expect_ne() { [[ "$1" != "$2" ]] || fail "$3: did not expect '$2'"; ok "$3"; }

# jget FIELD.PATH < json   (prints "" for missing, JSON for objects)
jget() {
  node -e 'let d="";process.stdin.on("data",c=>d+=c).on("end",()=>{let v=JSON.parse(d);for(const k of process.argv[1].split("."))v=v==null?v:v[k];console.log(v===undefined||v===null?"":typeof v==="object"?JSON.stringify(v):v)})' "$1"
}

[[ -d "$HERE/node_modules/oidc-provider" ]] || (cd "$HERE" && npm ci --no-audit --no-fund >&2)

# ---- start: stdin is a FIFO held open by fd 3 so that closing fd 3 delivers EOF -----------------
start_server() { # $1 = fifo path; sets SERVER_PID, URL
  mkfifo "$1"
  node "$HERE/server.mjs" <"$1" >"$WORK/idp.out" 2>"$WORK/idp.err" 3>&- &
  SERVER_PID=$!
  exec 3>"$1"
  local t0=$(date +%s%N)
  for _ in $(seq 1 200); do
    grep -q '^IDP_READY ' "$WORK/idp.out" 2>/dev/null && break
    sleep 0.05
  done
  URL="$(awk '/^IDP_READY /{print $2}' "$WORK/idp.out")"
  [[ -n "$URL" ]] || fail "server did not print IDP_READY"
  echo "     start-up took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}
start_server "$WORK/stdin"
[[ "$(wc -l <"$WORK/idp.out")" -eq 1 ]] || fail "stdout must hold exactly one line"
[[ "$URL" =~ ^http://127\.0\.0\.1:[0-9]+$ ]] || fail "bad ready line: $URL"
ok "ready line: $URL"

# ---- helpers ------------------------------------------------------------------------------------
register() { # $1 = JSON body; prints status, body in $WORK/reg
  curl -s -o "$WORK/reg" -w '%{http_code}' -H 'content-type: application/json' --data-binary "$1" "$URL/_test/clients"
}
# token ARGS... -> status; body in $WORK/tok
token() { curl -s -o "$WORK/tok" -w '%{http_code}' "$@" "$URL/token"; }
basic() { printf '%s:%s' "$1" "$2" | base64 -w0; }
# RFC 6749 §2.3.1 application/x-www-form-urlencoded (space -> '+')
formenc() { node -e 'console.log(new URLSearchParams({v:process.argv[1]}).toString().slice(2))' "$1"; }
introspect() { # $1 token, $2 client id, $3 secret -> "active" value
  curl -s -u "$(formenc "$2"):$(formenc "$3")" --data-urlencode "token=$1" "$URL/token/introspection" | jget active
}
location() { tr -d '\r' <"$1" | awk 'tolower($1)=="location:"{print $2}'; }

# sign_in JAR AUTH_URL MODE(allow|cancel|deny) -> prints the final Location (at the redirect_uri)
sign_in() {
  local jar="$1" loc="$2" mode="$3" n=0 page
  curl -s -D "$WORK/h" -o /dev/null -b "$jar" -c "$jar" "$loc"
  loc="$(location "$WORK/h")"
  while [[ "$loc" == "$URL"/* ]]; do
    n=$((n + 1)); [[ $n -lt 10 ]] || fail "redirect loop"
    if [[ "$loc" == "$URL"/interaction/* ]]; then
      page="$(curl -s -b "$jar" -c "$jar" "$loc")"
      if [[ "$page" == *'id="login-form"'* ]]; then
        if [[ "$mode" == cancel ]]; then
          curl -s -D "$WORK/h" -o /dev/null -b "$jar" -c "$jar" -X POST "$loc/abort"
        else
          # wrong password first: must re-render the form with an error and not sign in
          local bad; bad="$(curl -s -w '\n%{http_code}' -b "$jar" -c "$jar" -d login=alice -d password=nope "$loc/login")"
          [[ "$bad" == *'id="error"'* && "$bad" == *'id="login-form"'* && "${bad##*$'\n'}" == 200 ]] || fail "wrong password page"
          curl -s -D "$WORK/h" -o /dev/null -b "$jar" -c "$jar" -d login=alice -d password=alice-password "$loc/login"
        fi
      elif [[ "$page" == *'id="consent-form"'* ]]; then
        [[ "$mode" == deny ]] && curl -s -D "$WORK/h" -o /dev/null -b "$jar" -c "$jar" -X POST "$loc/abort" \
          || curl -s -D "$WORK/h" -o /dev/null -b "$jar" -c "$jar" -X POST "$loc/confirm"
      else
        fail "unexpected interaction page: $page"
      fi
    else
      curl -s -D "$WORK/h" -o /dev/null -b "$jar" -c "$jar" "$loc"
    fi
    grep -q '^HTTP/1.1 30[23]' "$WORK/h" || fail "expected redirect from $loc: $(head -1 "$WORK/h")"
    loc="$(location "$WORK/h")"
  done
  echo "$loc"
}
qparam() { node -e 'console.log(new URL(process.argv[1]).searchParams.get(process.argv[2]) ?? "")' "$1" "$2"; }

VERIFIER="smoke-verifier-0123456789-abcdefghijklmnopqrstuvwxyz"
CHALLENGE="$(printf '%s' "$VERIFIER" | openssl dgst -sha256 -binary | base64 -w0 | tr '+/' '-_' | tr -d '=')"
CB="http://localhost/oauth-callback"
auth_url() { # $1 client_id, $2 scope, $3 extra params, $4 state
  echo "$URL/auth?response_type=code&client_id=$(formenc "$1")&redirect_uri=$(formenc "$CB")&scope=$(formenc "$2")&state=${4:-st-$RANDOM}$3"
}

# ---- discovery ----------------------------------------------------------------------------------
DISC="$(curl -s "$URL/.well-known/openid-configuration")"
expect_eq "$(jget issuer <<<"$DISC")" "$URL" "discovery issuer"
expect_eq "$(jget introspection_endpoint <<<"$DISC")" "$URL/token/introspection" "introspection endpoint"
expect_eq "$(jget revocation_endpoint <<<"$DISC")" "$URL/token/revocation" "revocation endpoint"

# ---- registration -------------------------------------------------------------------------------
CC_ID='cc:client+1% x/y'; CC_SECRET='s3cr:t+%/ x'
CC_META="\"grant_types\":[\"client_credentials\"],\"response_types\":[],\"redirect_uris\":[],\"scope\":\"api:read api:write\""
expect_eq "$(register "{\"metadata\":{\"client_id\":\"$CC_ID\",\"client_secret\":\"$CC_SECRET\",$CC_META}}")" 201 "register cc client"
expect_eq "$(jget client_id <"$WORK/reg")" "$CC_ID" "register answers client_id"
expect_eq "$(register '{"metadata":{"client_id":"cc:client+1% é","client_secret":"s3cr:t+%/ é",'"$CC_META"'}}')" 400 "non-ASCII client_id rejected (RFC 6749 VSCHAR)"
expect_eq "$(register '{"metadata":{"client_id":"broken","client_secret":"x","redirect_uris":["not a url"]}}')" 400 "invalid metadata -> 400"
expect_eq "$(register '{"metadata":{"client_id":"x"},"rotate_refresh_token":"yes"}')" 400 "invalid option -> 400"

# ---- client credentials: basic and post ---------------------------------------------------------
expect_eq "$(token -H "Authorization: Basic $(basic "$(formenc "$CC_ID")" "$(formenc "$CC_SECRET")")" -d grant_type=client_credentials -d scope=api:read)" 200 "cc basic (+ for space)"
expect_eq "$(jget token_type <"$WORK/tok")" Bearer "cc token_type Bearer"
expect_eq "$(jget scope <"$WORK/tok")" api:read "cc scope"
CC_AT="$(jget access_token <"$WORK/tok")"
ENC20="$(formenc "$CC_ID" | sed 's/+/%20/g')"; SEC20="$(formenc "$CC_SECRET" | sed 's/+/%20/g')"
expect_eq "$(token -H "Authorization: Basic $(basic "$ENC20" "$SEC20")" -d grant_type=client_credentials)" 200 "cc basic (%20 for space)"
expect_eq "$(token -H "Authorization: Basic $(basic "$CC_ID" "$CC_SECRET")" -d grant_type=client_credentials)" 400 "cc basic unencoded -> 400"
expect_eq "$(jget error <"$WORK/tok")" invalid_request "unencoded basic error"
expect_eq "$(token -H "Authorization: Basic $(basic "$(formenc "$CC_ID")" wrong)" -d grant_type=client_credentials)" 401 "cc basic wrong secret -> 401"
expect_eq "$(token --data-urlencode "client_id=$CC_ID" --data-urlencode "client_secret=$CC_SECRET" -d grant_type=client_credentials -d 'scope=api:read api:write')" 200 "cc post"
expect_eq "$(jget scope <"$WORK/tok")" "api:read api:write" "cc post scope"

STATS="$(curl -s -G --data-urlencode "client_id=$CC_ID" "$URL/_test/stats")"
# (the unencoded request is recorded under client_id "cc": the user part ends at the first ':')
expect_eq "$(jget token_requests.length <<<"$STATS")" 4 "stats: 4 requests for cc client"
expect_eq "$(jget token_requests.0 <<<"$STATS")" '{"grant_type":"client_credentials","client_id":"cc:client+1% x/y","auth_method":"basic","status":200,"error":null}' "stats record (basic)"
expect_eq "$(jget token_requests.2.status <<<"$STATS"),$(jget token_requests.2.error <<<"$STATS")" "401,invalid_client" "stats records 401 invalid_client"
expect_eq "$(jget token_requests.3.auth_method <<<"$STATS")" post "stats auth_method post"
token -H "Authorization: Basic $(basic 'caf%C3%A9+x' s)" -d grant_type=client_credentials >/dev/null
expect_eq "$(curl -s -G --data-urlencode 'client_id=café x' "$URL/_test/stats" | jget token_requests.0.error)" invalid_request "non-ASCII basic: 400, recorded decoded in stats"
STATS_CC="$(curl -s "$URL/_test/stats?client_id=cc")"
expect_eq "$(jget token_requests.0.status <<<"$STATS_CC"),$(jget token_requests.0.error <<<"$STATS_CC")" "400,invalid_request" "stats records failed request"

# ---- introspection, revocation endpoint, short TTL ----------------------------------------------
expect_eq "$(introspect "$CC_AT" "$CC_ID" "$CC_SECRET")" true "introspection active"
expect_eq "$(introspect garbage "$CC_ID" "$CC_SECRET")" false "introspection unknown token"
curl -s -o /dev/null -u "$(formenc "$CC_ID"):$(formenc "$CC_SECRET")" --data-urlencode "token=$CC_AT" "$URL/token/revocation"
expect_eq "$(introspect "$CC_AT" "$CC_ID" "$CC_SECRET")" false "revoked via /token/revocation"
expect_eq "$(register "{\"metadata\":{\"client_id\":\"cc-short\",\"client_secret\":\"s\",$CC_META},\"access_token_ttl\":2}")" 201 "register 2 s client"
token -u cc-short:s -d grant_type=client_credentials >/dev/null
expect_eq "$(jget expires_in <"$WORK/tok")" 2 "expires_in 2"
SHORT_AT="$(jget access_token <"$WORK/tok")"
expect_eq "$(introspect "$SHORT_AT" cc-short s)" true "short token active"
sleep 2.2
expect_eq "$(introspect "$SHORT_AT" cc-short s)" false "short token expired after 2 s (clockTolerance 0)"

# ---- authorization code + PKCE ------------------------------------------------------------------
WEB_META='"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"redirect_uris":["'"$CB"'"]'
expect_eq "$(register '{"metadata":{"client_id":"web norot","client_secret":"web-secret",'"$WEB_META"'}}')" 201 "register web client (no rotation)"
FULL="openid profile email offline_access"
LOC="$(sign_in "$WORK/jar1" "$(auth_url 'web norot' "$FULL" "&prompt=consent&code_challenge=$CHALLENGE&code_challenge_method=S256")" allow)"
[[ "$LOC" == "$CB?"* ]] || fail "did not reach redirect_uri: $LOC"
expect_eq "$(qparam "$LOC" iss)" "$URL" "authorization response iss"
CODE="$(qparam "$LOC" code)"
expect_eq "$(token -u 'web+norot:web-secret' -d grant_type=authorization_code --data-urlencode "code=$CODE" --data-urlencode "redirect_uri=$CB" -d code_verifier=wrong-verifier-0123456789-abcdefghijklmnopqrstuvwxyz)" 400 "wrong code_verifier -> 400"
expect_eq "$(jget error <"$WORK/tok")" invalid_grant "wrong code_verifier -> invalid_grant"

# second sign-in reuses the session cookie (no login form, consent again because prompt=consent)
LOC="$(sign_in "$WORK/jar1" "$(auth_url 'web norot' "$FULL" "&prompt=consent&code_challenge=$CHALLENGE&code_challenge_method=S256")" allow)"
expect_eq "$(token -u 'web+norot:web-secret' -d grant_type=authorization_code --data-urlencode "code=$(qparam "$LOC" code)" --data-urlencode "redirect_uri=$CB" -d "code_verifier=$VERIFIER")" 200 "code exchange with PKCE"
RT="$(jget refresh_token <"$WORK/tok")"; AT="$(jget access_token <"$WORK/tok")"
expect_ne "$RT" "" "offline_access + prompt=consent gives a refresh token"
expect_ne "$(jget id_token <"$WORK/tok")" "" "id_token issued"
expect_eq "$(jget scope <"$WORK/tok")" "$FULL" "granted scope"
UI="$(curl -s -H "Authorization: Bearer $AT" "$URL/me")"
expect_eq "$(jget sub <<<"$UI"),$(jget name <<<"$UI"),$(jget email <<<"$UI")" "alice,Alice Example,alice@example.test" "userinfo claims"

# refresh without rotation: the same RT keeps working and is returned unchanged
for i in 1 2; do
  expect_eq "$(token -u 'web+norot:web-secret' -d grant_type=refresh_token --data-urlencode "refresh_token=$RT")" 200 "refresh #$i (rotation off)"
  expect_eq "$(jget refresh_token <"$WORK/tok")" "$RT" "refresh #$i returns same RT"
done

# no PKCE, no prompt=consent: offline_access is dropped silently -> no refresh token
LOC="$(sign_in "$WORK/jar2" "$(auth_url 'web norot' "$FULL" "")" allow)"
expect_eq "$(token -u 'web+norot:web-secret' -d grant_type=authorization_code --data-urlencode "code=$(qparam "$LOC" code)" --data-urlencode "redirect_uri=$CB")" 200 "code exchange without PKCE"
expect_eq "$(jget refresh_token <"$WORK/tok")" "" "no RT without prompt=consent"

# existing session + existing grant, no prompt=consent: /auth redirects straight to the redirect_uri
curl -s -D "$WORK/h" -o /dev/null -b "$WORK/jar2" -c "$WORK/jar2" "$(auth_url 'web norot' "openid profile" "" direct)"
expect_eq "$(qparam "$(location "$WORK/h")" state)" direct "silent re-authorization with existing grant"

# issue_refresh_token: true -> RT even without offline_access
expect_eq "$(register '{"metadata":{"client_id":"web-always","client_secret":"s",'"$WEB_META"'},"issue_refresh_token":true}')" 201 "register issue_refresh_token client"
LOC="$(sign_in "$WORK/jar3" "$(auth_url web-always "openid api:read" "")" allow)"
token -u web-always:s -d grant_type=authorization_code --data-urlencode "code=$(qparam "$LOC" code)" --data-urlencode "redirect_uri=$CB" >/dev/null
RT3="$(jget refresh_token <"$WORK/tok")"
expect_ne "$RT3" "" "issue_refresh_token gives RT without offline_access"
expect_eq "$(token -u web-always:s -d grant_type=refresh_token --data-urlencode "refresh_token=$RT3")" 200 "that RT refreshes"

# rotation on: new RT each time; replaying the old one -> invalid_grant and the grant is revoked
expect_eq "$(register '{"metadata":{"client_id":"web-rot","client_secret":"s","token_endpoint_auth_method":"client_secret_post",'"$WEB_META"'},"rotate_refresh_token":true}')" 201 "register rotating client"
LOC="$(sign_in "$WORK/jar4" "$(auth_url web-rot "$FULL" "&prompt=consent")" allow)"
token -d client_id=web-rot -d client_secret=s -d grant_type=authorization_code --data-urlencode "code=$(qparam "$LOC" code)" --data-urlencode "redirect_uri=$CB" >/dev/null
RT_A="$(jget refresh_token <"$WORK/tok")"
expect_eq "$(token -d client_id=web-rot -d client_secret=s -d grant_type=refresh_token --data-urlencode "refresh_token=$RT_A")" 200 "rotating refresh"
RT_B="$(jget refresh_token <"$WORK/tok")"; AT_B="$(jget access_token <"$WORK/tok")"
expect_ne "$RT_B" "$RT_A" "rotated RT differs"
expect_eq "$(token -d client_id=web-rot -d client_secret=s -d grant_type=refresh_token --data-urlencode "refresh_token=$RT_A")" 400 "replayed RT -> 400"
expect_eq "$(jget error <"$WORK/tok")" invalid_grant "replayed RT -> invalid_grant"
expect_eq "$(token -d client_id=web-rot -d client_secret=s -d grant_type=refresh_token --data-urlencode "refresh_token=$RT_B")" 400 "replay revoked the grant (new RT dead too)"
expect_eq "$(introspect "$AT_B" web-rot s)" false "replay revoked the grant (AT dead too)"
STATS="$(curl -s "$URL/_test/stats?client_id=web-rot")"
expect_eq "$(node -e 'const r=JSON.parse(process.argv[1]).token_requests;console.log(r.filter(x=>x.grant_type==="refresh_token").length+"/"+[...new Set(r.map(x=>x.auth_method))])' "$STATS")" "3/post" "stats: 3 refresh requests, all post"

# refresh_token_ttl / access_token_ttl on an authorization-code client
expect_eq "$(register '{"metadata":{"client_id":"web-short","client_secret":"s",'"$WEB_META"'},"access_token_ttl":2,"refresh_token_ttl":2}')" 201 "register short-lived web client"
LOC="$(sign_in "$WORK/jar8" "$(auth_url web-short "$FULL" "&prompt=consent")" allow)"
token -u web-short:s -d grant_type=authorization_code --data-urlencode "code=$(qparam "$LOC" code)" --data-urlencode "redirect_uri=$CB" >/dev/null
expect_eq "$(jget expires_in <"$WORK/tok")" 2 "AT expires_in 2 (code flow)"
SHORT_RT="$(jget refresh_token <"$WORK/tok")"
sleep 2.2
expect_eq "$(token -u web-short:s -d grant_type=refresh_token --data-urlencode "refresh_token=$SHORT_RT")" 400 "RT dead after refresh_token_ttl"
expect_eq "$(jget error <"$WORK/tok")" invalid_grant "expired RT -> invalid_grant"

# re-registration replaces the client (no stale cached client object)
expect_eq "$(register '{"metadata":{"client_id":"web-short","client_secret":"s2",'"$WEB_META"'}}')" 201 "re-register with new secret"
expect_eq "$(token -u web-short:s -d grant_type=refresh_token -d refresh_token=x)" 401 "old secret rejected after re-registration"
expect_eq "$(token -u web-short:s2 -d grant_type=refresh_token -d refresh_token=x)" 400 "new secret accepted after re-registration"

# public client (auth method none) with a loopback redirect_uri carrying a port, no PKCE
expect_eq "$(register '{"metadata":{"client_id":"public","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"redirect_uris":["http://127.0.0.1:45678/cb"]}}')" 201 "register public loopback client"
LOC="$(sign_in "$WORK/jar9" "$URL/auth?response_type=code&client_id=public&redirect_uri=http%3A%2F%2F127.0.0.1%3A45678%2Fcb&scope=openid&state=p1" allow)"
[[ "$LOC" == http://127.0.0.1:45678/cb\?* ]] || fail "public client redirect: $LOC"
expect_eq "$(token -d client_id=public -d grant_type=authorization_code --data-urlencode "code=$(qparam "$LOC" code)" -d redirect_uri=http://127.0.0.1:45678/cb)" 200 "public client code exchange without PKCE"
expect_eq "$(jget auth_method <<<"$(curl -s "$URL/_test/stats?client_id=public" | jget token_requests.0)")" none "stats auth_method none"

# ---- token_type override ------------------------------------------------------------------------
expect_eq "$(register '{"metadata":{"client_id":"web-dpop","client_secret":"s",'"$WEB_META"'},"token_type":"DPoP"}')" 201 "register DPoP-typed client"
LOC="$(sign_in "$WORK/jar5" "$(auth_url web-dpop "$FULL" "&prompt=consent")" allow)"
token -u web-dpop:s -d grant_type=authorization_code --data-urlencode "code=$(qparam "$LOC" code)" --data-urlencode "redirect_uri=$CB" >/dev/null
expect_eq "$(jget token_type <"$WORK/tok")" DPoP "token_type rewritten on code exchange"
DPOP_RT="$(jget refresh_token <"$WORK/tok")"; DPOP_AT="$(jget access_token <"$WORK/tok")"
token -u web-dpop:s -d grant_type=refresh_token --data-urlencode "refresh_token=$DPOP_RT" >/dev/null
expect_eq "$(jget token_type <"$WORK/tok")" DPoP "token_type rewritten on refresh"

# ---- grant revocation via /_test/revoke ---------------------------------------------------------
REV="$(curl -s -H 'content-type: application/json' -d '{"client_id":"web-dpop"}' "$URL/_test/revoke")"
expect_eq "$(jget revoked <<<"$REV")" 1 "revoked 1 grant"
expect_eq "$(introspect "$DPOP_AT" web-dpop s)" false "AT invalid after /_test/revoke"
expect_eq "$(token -u web-dpop:s -d grant_type=refresh_token --data-urlencode "refresh_token=$DPOP_RT")" 400 "RT invalid after /_test/revoke"
expect_eq "$(jget error <"$WORK/tok")" invalid_grant "RT after revoke -> invalid_grant"

# ---- cancel / deny --------------------------------------------------------------------------------
LOC="$(sign_in "$WORK/jar6" "$(auth_url 'web norot' openid "" cancel-state)" cancel)"
expect_eq "$(qparam "$LOC" error),$(qparam "$LOC" state)" "access_denied,cancel-state" "cancel at login -> access_denied"
LOC="$(sign_in "$WORK/jar7" "$(auth_url 'web norot' openid "" deny-state)" deny)"
expect_eq "$(qparam "$LOC" error),$(qparam "$LOC" state)" "access_denied,deny-state" "deny at consent -> access_denied"
expect_eq "$(qparam "$LOC" error_description)" "End-User aborted interaction" "deny error_description"

# ---- no external resources in our HTML --------------------------------------------------------------
external() { grep -qiE '<link|<script[^>]*src|@import|googleapis|https://' <<<"$1"; }
ERRPAGE="$(curl -s "$URL/auth?client_id=nope&response_type=code")"
[[ "$ERRPAGE" == *'id="error"'* ]] && ! external "$ERRPAGE" || fail "error page: $ERRPAGE"; ok "error page self-contained"
LOGOUT="$(curl -s -b "$WORK/jar1" -c "$WORK/jar1" "$URL/session/end")"
[[ "$LOGOUT" == *'id="logout"'* ]] && ! external "$LOGOUT" || fail "logout page: $LOGOUT"; ok "logout page self-contained"
XSRF="$(sed -n 's/.*name="xsrf" value="\([^"]*\)".*/\1/p' <<<"$LOGOUT")"
DONE="$(curl -s -L -b "$WORK/jar1" -c "$WORK/jar1" -d "xsrf=$XSRF" -d logout=yes "$URL/session/end/confirm")"
[[ "$DONE" == *'id="signed-out"'* ]] && ! external "$DONE" || fail "post-logout page: $DONE"; ok "post-logout page self-contained"

# ---- exit on stdin EOF ----------------------------------------------------------------------------
exec 3>&-
for _ in $(seq 1 40); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$SERVER_PID" 2>/dev/null && fail "server still running after stdin EOF"
wait "$SERVER_PID" && ok "exit on stdin EOF (status 0)" || fail "non-zero exit after stdin EOF"
SERVER_PID=""

# ---- exit on SIGTERM (stdin kept open) --------------------------------------------------------------
rm -f "$WORK/idp.out"
IDP_PORT=0 start_server "$WORK/stdin2"
kill -TERM "$SERVER_PID"
for _ in $(seq 1 40); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$SERVER_PID" 2>/dev/null && fail "server still running after SIGTERM"
ok "exit on SIGTERM"
SERVER_PID=""
exec 3>&-

echo "smoke: all $PASS checks passed"
