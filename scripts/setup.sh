#!/usr/bin/env bash
# Prepares a machine for scim-ldap: the Debian packages it needs (slapd, ldap-utils, curl)
# and a virtualenv in .venv with the Python dependencies at the versions requirements.lock
# pins (plus the dev extras with --dev).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"

need=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need+=(ldap-utils)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ -n "$extras" ]; then
    command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
    command -v unshare >/dev/null 2>&1 || need+=(util-linux)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${need[*]} with apt-get" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # slapd's own post-install would start a system server; the policy hook keeps it stopped.
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.scim-ldap
        chmod +x /usr/sbin/policy-rc.d.scim-ldap
        [ -e /usr/sbin/policy-rc.d ] || ln -s /usr/sbin/policy-rc.d.scim-ldap /usr/sbin/policy-rc.d
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
        if [ "$(readlink /usr/sbin/policy-rc.d 2>/dev/null)" = /usr/sbin/policy-rc.d.scim-ldap ]; then
            rm -f /usr/sbin/policy-rc.d
        fi
        rm -f /usr/sbin/policy-rc.d.scim-ldap
    else
        echo "scim-ldap needs these Debian packages: ${need[*]}" >&2
        echo "install them with: sudo apt-get install --no-install-recommends ${need[*]}" >&2
        exit 1
    fi
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "scim-ldap needs Python 3.11 or newer ($python is older or missing)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.installed${extras}"
[ -z "$extras" ] && [ -f ".venv/.installed[dev]" ] && [ ! -f "$stamp" ] && stamp=".venv/.installed[dev]"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    # The locked runtime versions first (what the image ships), then the app and its extras.
    .venv/bin/python -m pip install -q --require-hashes -r requirements.lock
    .venv/bin/python -m pip install -q -e ".${extras}"
    touch "$stamp"
fi
