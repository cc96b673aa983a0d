"""Server processes for the tests that need several (``python -m app serve``, one per env)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import IO

from tests.test_scripts import ROOT, free_port, wait_healthy


def clean_environment() -> dict[str, str]:
    """This process's environment without any ``SCIM_LDAP_`` setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SCIM_LDAP_")}


@contextmanager
def serving(environments: Sequence[Mapping[str, str]]) -> Iterator[list[str]]:
    """One server process per environment, healthy; their base URLs (``http://127.0.0.1:N``).

    On the way out each is interrupted, and its output must hold no traceback
    and no 500. The output (logs and audit trail) goes to a file, not a pipe no
    one reads while the server runs, which would stall it once full.
    """
    with ExitStack() as files:
        outputs = [
            files.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8"))
            for _ in environments
        ]
        yield from _serve(environments, outputs)


def _serve(
    environments: Sequence[Mapping[str, str]], outputs: Sequence[IO[str]]
) -> Iterator[list[str]]:
    ports = [free_port() for _ in environments]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**clean_environment(), **environment},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for port, environment, out in zip(ports, environments, outputs, strict=True)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, processes, strict=True):
            wait_healthy(url, process)
        yield urls
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process, out in zip(processes, outputs, strict=True):
            process.wait(timeout=30)
            out.seek(0)
            output = out.read()
            assert "Traceback" not in output, output
            assert " 500 " not in output, output
