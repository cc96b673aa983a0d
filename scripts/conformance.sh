#!/usr/bin/env bash
# Black-box SCIM 2.0 conformance check for a running scim-ldap deployment.
# Exercises the requests Microsoft Entra ID provisioning sends, using plain curl.
# Requires only bash (3.2+), curl (7.55+) and python3 (for JSON parsing).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: conformance.sh [-k] [-h] [SCIM_URL [TOKEN]]

  SCIM_URL  base URL of the SCIM API, e.g. https://scim.example.com/scim/v2
            (default: $SCIM_URL)
  TOKEN     bearer token (default: $SCIM_TOKEN; prefer the environment
            variable, command-line arguments are visible to other users in ps)
  -k        do not verify the server's TLS certificate (curl --insecure)
  -h        show this help

Creates a temporary user scimtest-<random>@example.com, runs create / query /
PATCH / disable / delete checks against it and deletes it again, also when a
check fails or the script is interrupted. Prints one line per check, then
"N passed, M failed"; exits 1 if any check failed, 2 on usage errors.
EOF
}

INSECURE=""
POSITIONAL=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -k | --insecure) INSECURE=1 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; POSITIONAL+=("$@"); break ;;
    -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) POSITIONAL+=("$1") ;;
  esac
  shift
done
BASE_URL=${POSITIONAL[0]:-${SCIM_URL:-}}
TOKEN=${POSITIONAL[1]:-${SCIM_TOKEN:-}}
BASE_URL=${BASE_URL%/}
if [[ -z $BASE_URL || -z $TOKEN ]]; then
  echo "error: SCIM URL and token are required" >&2
  usage >&2
  exit 2
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found" >&2; exit 2; }
done

USER_SCHEMA="urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE="urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
POSIX="urn:ietf:params:scim:schemas:extension:posix:2.0:User"
PATCH_OP="urn:ietf:params:scim:api:messages:2.0:PatchOp"

read -r RAND UID_NUMBER PROBE_UUID < <(python3 -c '
import random, secrets, uuid
print(secrets.token_hex(4), random.randint(20000, 59999), uuid.uuid4())')
USER_NAME="scimtest-$RAND@example.com"
EXTERNAL_ID="scimtest-$RAND"
USER_ID=""
CREATE_SENT=""
USER_DELETED=""
PASSED=0
FAILED=0

umask 077
WORK=$(mktemp -d)
# The token only ever lives in files under $WORK (mode 600), handed to curl as
# "-H @file", so it never appears in the process list or in the output.
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$WORK/auth"
printf 'Authorization: Bearer wrong-%s\n' "$RAND" >"$WORK/auth-wrong"
AUTH_FILE="$WORK/auth"

# request METHOD PATH [BODY] [extra curl args...]
# Sets STATUS (000 if curl itself failed); the response body is stored in
# $WORK/body and the response headers in $WORK/headers. The Authorization
# header is read from $AUTH_FILE (empty: no Authorization header).
request() {
  local method=$1 path=$2 body=${3-}
  shift 2
  if [[ $# -gt 0 ]]; then shift; fi
  local args=(-sS --connect-timeout 10 --max-time 30 -X "$method"
    -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}'
    -H 'Accept: application/scim+json' -H 'Content-Type: application/scim+json' -H 'Expect:')
  if [[ -n $AUTH_FILE ]]; then args+=(-H "@$AUTH_FILE"); fi
  if [[ -n $INSECURE ]]; then args+=(--insecure); fi
  if [[ -n $body ]]; then
    printf '%s' "$body" >"$WORK/request"
    args+=(--data-binary "@$WORK/request")
  fi
  : >"$WORK/body"
  : >"$WORK/headers"
  STATUS=$(curl "${args[@]}" "$@" "$BASE_URL$path" 2>"$WORK/curl-error") || STATUS=000
}

# json_get 'python expression on d': evaluates the expression on the parsed
# response body and prints strings as-is, anything else as JSON (so a boolean
# prints as true/false). Prints nothing if the body is not JSON or the
# expression raises.
json_get() {
  python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    v = eval(sys.argv[1], {"d": d, "json": json})
except Exception:
    sys.exit(0)
print(v if isinstance(v, str) else json.dumps(v))' "$1" <"$WORK/body"
}

# header_get NAME: value of the last response header NAME (case-insensitive).
header_get() {
  local line value=""
  shopt -s nocasematch
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    if [[ $line == "$1":* ]]; then value=${line#*:}; fi
  done <"$WORK/headers"
  shopt -u nocasematch
  printf '%s' "${value#"${value%%[![:space:]]*}"}"
}

urlencode() {
  python3 -c 'import sys, urllib.parse; print(urllib.parse.quote_plus(sys.argv[1]))' "$1"
}

excerpt() {
  local text
  text=$(<"$WORK/body")
  if [[ -z $text ]]; then text="(empty body) $(<"$WORK/curl-error")"; fi
  text=${text//$'\r'/}
  text=${text//$'\n'/ }
  printf '%s' "${text:0:300}"
}

pass() { PASSED=$((PASSED + 1)); printf 'ok   %s %s\n' "$STATUS" "$1"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$1"; }

# expect_status LABEL CODE...: passes if STATUS is one of the codes.
expect_status() {
  local label=$1 code
  shift
  for code in "$@"; do
    if [[ $STATUS == "$code" ]]; then pass "$label"; return 0; fi
  done
  local want="$*"
  fail "expected ${want// /|} got $STATUS ($label): $(excerpt)"
  return 1
}

# check LABEL EXPECTED ACTUAL
check() {
  if [[ $3 == "$2" ]]; then pass "$1"; else fail "expected \"$2\" got \"$3\" ($1)"; fi
}

# filter_users 'SCIM filter': GET /Users?filter=... (URL-encoded)
filter_users() {
  request GET "/Users?filter=$(urlencode "$1")"
}

# patch_user LABEL OPERATIONS_JSON: PATCH the test user, expect 200 or 204.
patch_user() {
  request PATCH "/Users/$USER_ID" "{\"schemas\":[\"$PATCH_OP\"],\"Operations\":$2}"
  expect_status "PATCH /Users/{id} $1" 200 204 || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  AUTH_FILE="$WORK/auth"
  if [[ -z $USER_ID && -n $CREATE_SENT ]]; then
    # The create may have succeeded without us seeing the response.
    filter_users "userName eq \"$USER_NAME\""
    USER_ID=$(json_get '(d.get("Resources") or [{}])[0].get("id", "")')
  fi
  if [[ -n $USER_ID && -z $USER_DELETED ]]; then
    request DELETE "/Users/$USER_ID"
    if [[ $STATUS == 204 || $STATUS == 404 ]]; then
      echo "cleanup: deleted test user $USER_ID" >&2
    else
      echo "cleanup: could not delete test user $USER_ID ($USER_NAME): HTTP $STATUS" >&2
    fi
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. Discovery endpoints
request GET /ServiceProviderConfig
if expect_status "GET /ServiceProviderConfig" 200; then
  check "GET /ServiceProviderConfig patch.supported" true "$(json_get 'd["patch"]["supported"]')"
  check "GET /ServiceProviderConfig filter.supported" true "$(json_get 'd["filter"]["supported"]')"
fi
request GET /Schemas
if expect_status "GET /Schemas" 200; then
  check "GET /Schemas lists the core User schema" true \
    "$(json_get "any(r.get('id') == '$USER_SCHEMA' for r in d.get('Resources', []))")"
fi
request GET /ResourceTypes
if expect_status "GET /ResourceTypes" 200; then
  check "GET /ResourceTypes lists /Users" true \
    "$(json_get 'any(r.get("endpoint") == "/Users" for r in d.get("Resources", []))')"
fi

# 2. Authentication
AUTH_FILE="" request GET /Users
if expect_status "GET /Users without token" 401; then
  check "GET /Users without token has WWW-Authenticate" yes \
    "$([[ -n $(header_get WWW-Authenticate) ]] && echo yes || echo no)"
fi
AUTH_FILE="$WORK/auth-wrong" request GET /Users
expect_status "GET /Users with wrong token" 401 || true

# 3. Entra's connection test: filter on a user that does not exist
filter_users "userName eq \"$PROBE_UUID\""
if expect_status "GET /Users?filter=userName eq <random uuid>" 200; then
  check "probe totalResults" 0 "$(json_get 'd.get("totalResults")')"
  check "probe Resources empty" 0 "$(json_get 'len(d.get("Resources") or [])')"
fi

# 4. Create a user the way Entra does
USER_BODY=$(cat <<EOF
{
  "schemas": ["$USER_SCHEMA", "$ENTERPRISE"],
  "externalId": "$EXTERNAL_ID",
  "userName": "$USER_NAME",
  "active": true,
  "displayName": "SCIM Test $RAND",
  "title": "Conformance Tester",
  "emails": [{"primary": true, "type": "work", "value": "$USER_NAME"}],
  "name": {"formatted": "Scim Test$RAND", "familyName": "Test$RAND", "givenName": "Scim"},
  "$ENTERPRISE": {"employeeNumber": "$RAND", "department": "QA"},
  "$POSIX": {"uidNumber": $UID_NUMBER, "gidNumber": 10000, "loginShell": "/bin/bash"}
}
EOF
)
CREATE_SENT=1
request POST /Users "$USER_BODY"
if [[ $STATUS == 2?? ]]; then USER_ID=$(json_get 'd.get("id", "")'); fi
if expect_status "POST /Users create" 201; then
  check "POST /Users body has id" yes "$([[ -n $USER_ID ]] && echo yes || echo no)"
  location=$(header_get Location)
  check "POST /Users Location ends with id" yes \
    "$([[ -n $USER_ID && $location == *"$USER_ID" ]] && echo yes || echo "no: '$location'")"
  check "POST /Users userName" "$USER_NAME" "$(json_get 'd.get("userName")')"
fi

user_steps() {
  # 5. Duplicate create
  request POST /Users "$USER_BODY"
  if expect_status "POST /Users duplicate" 409; then
    check "POST /Users duplicate scimType" uniqueness "$(json_get 'd.get("scimType")')"
  fi

  # 6. Read back: by id, by case-insensitive userName, by externalId
  request GET "/Users/$USER_ID"
  if expect_status "GET /Users/{id}" 200; then
    check "GET /Users/{id} has ETag" yes "$([[ -n $(header_get ETag) ]] && echo yes || echo no)"
  fi
  local upper
  upper=$(printf '%s' "$USER_NAME" | tr '[:lower:]' '[:upper:]')
  filter_users "userName eq \"$upper\""
  if expect_status "GET /Users?filter=userName eq <UPPER-CASED>" 200; then
    check "userName filter totalResults" 1 "$(json_get 'd.get("totalResults")')"
    check "userName filter id" "$USER_ID" "$(json_get 'd["Resources"][0]["id"]')"
  fi
  filter_users "externalId eq \"$EXTERNAL_ID\""
  if expect_status "GET /Users?filter=externalId eq ..." 200; then
    check "externalId filter totalResults" 1 "$(json_get 'd.get("totalResults")')"
  fi

  # 7. PATCH, Entra's legacy dialect (capitalised ops, filtered path)
  patch_user "legacy Replace displayName + work email" "[
    {\"op\":\"Replace\",\"path\":\"displayName\",\"value\":\"Renamed $RAND\"},
    {\"op\":\"Replace\",\"path\":\"emails[type eq \\\"work\\\"].value\",\"value\":\"new-$RAND@example.com\"}]"
  request GET "/Users/$USER_ID"
  if expect_status "GET /Users/{id} after legacy PATCH" 200; then
    check "displayName after PATCH" "Renamed $RAND" "$(json_get 'd.get("displayName")')"
    check "work email after PATCH" "new-$RAND@example.com" \
      "$(json_get 'next(e.get("value") for e in d.get("emails", []) if e.get("type") == "work")')"
  fi

  # 8. PATCH, RFC 7644 compliant dialect (no path, dotted / URN-prefixed keys)
  patch_user "compliant replace without path" "[{\"op\":\"replace\",\"value\":{
    \"name.givenName\":\"Pat\",\"$ENTERPRISE:department\":\"Ops\"}}]"
  request GET "/Users/$USER_ID"
  if expect_status "GET /Users/{id} after compliant PATCH" 200; then
    check "name.givenName after PATCH" Pat "$(json_get 'd["name"]["givenName"]')"
    check "department after PATCH" Ops "$(json_get "d['$ENTERPRISE']['department']")"
  fi

  # 9. Disable (legacy string boolean) and re-enable (real boolean)
  patch_user "legacy Replace active \"False\"" '[{"op":"Replace","path":"active","value":"False"}]'
  request GET "/Users/$USER_ID"
  if expect_status "GET /Users/{id} after disable" 200; then
    check "active after disable" false "$(json_get 'd.get("active")')"
  fi
  filter_users "userName eq \"$USER_NAME\""
  if expect_status "GET /Users?filter=userName eq ... (disabled user)" 200; then
    check "disabled user still found" 1 "$(json_get 'd.get("totalResults")')"
  fi
  patch_user "compliant replace active true" '[{"op":"replace","path":"active","value":true}]'
  request GET "/Users/$USER_ID"
  if expect_status "GET /Users/{id} after re-enable" 200; then
    check "active after re-enable" true "$(json_get 'd.get("active")')"
  fi

  # 10. Optimistic concurrency
  request PATCH "/Users/$USER_ID" \
    "{\"schemas\":[\"$PATCH_OP\"],\"Operations\":[{\"op\":\"replace\",\"path\":\"title\",\"value\":\"Stale\"}]}" \
    -H 'If-Match: W/"stale"'
  expect_status "PATCH /Users/{id} with stale If-Match" 412 || true

  # 11. Malformed requests
  request GET "/Users?filter=$(urlencode 'userName eq')"
  if expect_status "GET /Users?filter=userName eq (incomplete)" 400; then
    check "bad filter scimType" invalidFilter "$(json_get 'd.get("scimType")')"
  fi
  request POST /Users "{\"schemas\":[\"$USER_SCHEMA\"],\"userName\":"
  expect_status "POST /Users malformed JSON" 400 || true

  # 12. Delete
  request DELETE "/Users/$USER_ID"
  if expect_status "DELETE /Users/{id}" 204; then USER_DELETED=1; fi
  request GET "/Users/$USER_ID"
  if expect_status "GET /Users/{id} after delete" 404; then
    check "404 error body status is the string \"404\"" '"404"' "$(json_get 'json.dumps(d.get("status"))')"
  fi
  request DELETE "/Users/$USER_ID"
  expect_status "DELETE /Users/{id} again" 404 || true
}

if [[ -n $USER_ID ]]; then
  user_steps
else
  fail "no user was created; skipped the remaining steps"
fi

printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
[[ $FAILED -eq 0 ]]
