#!/usr/bin/env bash
# Regenerates requirements.lock: the runtime dependencies of pyproject.toml and theirs, each
# pinned with the sha256 of every file PyPI holds for that version, for any platform running
# Python 3.11 or newer. The Dockerfile installs from it with pip --require-hashes.
# Run it after changing `dependencies` in pyproject.toml; extra arguments go to uv
# (e.g. --upgrade-package starlette).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=.venv/bin/uv
[ -x "$uv" ] || uv=$(command -v uv) || {
    echo "uv is needed: scripts/setup.sh --dev installs it in .venv" >&2
    exit 1
}
"$uv" pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 \
    --custom-compile-command scripts/lock.sh --quiet --output-file requirements.lock "$@"
