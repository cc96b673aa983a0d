"""Shared pieces of the benchmarks: a sandbox directory and the server in its own process."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.ldap.sandbox import SandboxDirectory  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"


def median_ms(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``action`` in milliseconds, after one warm-up call."""
    action()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


@contextmanager
def served(
    directory: SandboxDirectory, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[httpx.Client]:
    """``python -m app serve`` against ``directory``; yields a client for the SCIM base.

    ``env`` adds settings (``SCIM_LDAP_...``) for the server process.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_LDAP_")}
    process_env.update(
        {
            **directory.environment(),
            "SCIM_LDAP_AUTH__TOKENS": json.dumps([TOKEN]),
            "SCIM_LDAP_LOG_LEVEL": "warning",
            **(env or {}),
        }
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=ROOT,
        env=process_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        limits = httpx.Limits(max_connections=max(workers, 1) * 2)
        with httpx.Client(
            base_url=f"{base}/scim/v2",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
            limits=limits,
        ) as client:
            yield client
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
