#!/usr/bin/env bash
# Sets up scim-ldap and runs it on a throwaway local OpenLDAP (Ctrl-C stops both).
# Options are passed on: --port 8080 --host 127.0.0.1
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m app demo "$@"
