"""Server processes for the tests that need several (``python -m app serve``, one per env)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from tests.test_scripts import ROOT, free_port, wait_healthy


def clean_environment() -> dict[str, str]:
    """This process's environment without any ``SCIM_LDAP_`` setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SCIM_LDAP_")}


@contextmanager
def serving(environments: Sequence[Mapping[str, str]]) -> Iterator[list[str]]:
    """One server process per environment, healthy; their base URLs (``http://127.0.0.1:N``).

    On the way out each is interrupted, and its output must hold no traceback
    and no 500.
    """
    ports = [free_port() for _ in environments]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**clean_environment(), **environment},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for port, environment in zip(ports, environments, strict=True)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, processes, strict=True):
            wait_healthy(url, process)
        yield urls
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            output, _ = process.communicate(timeout=30)
            assert "Traceback" not in output, output
            assert " 500 " not in output, output
