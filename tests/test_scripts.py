"""The scripts an administrator runs: the README commands and the curl conformance check."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.ldap.sandbox import Sandbox
from tests.conftest import TOKEN

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def readme_commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "README.md must start with a sh block holding the two commands"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def wait_healthy(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited early"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become healthy")


@pytest.fixture
def served(sandbox: Sandbox) -> Iterator[str]:
    """``python -m app serve`` in its own process, configured by environment variables."""
    directory = sandbox.directory
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_LDAP_")}
    env.update(
        {
            **directory.environment(),
            "SCIM_LDAP_AUTH__TOKENS": json.dumps([TOKEN]),
        }
    )
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_healthy(f"http://127.0.0.1:{port}", process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
            out.seek(0)
            output = out.read()
            assert directory.bind_password not in output
            assert TOKEN not in output


def test_curl_conformance_script(served: str) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "conformance.sh"), f"{served}/scim/v2"],
        env={**os.environ, "SCIM_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\d+ passed, 0 failed$", result.stdout, re.M), result.stdout
    assert TOKEN not in result.stdout + result.stderr


def test_ci_runs_the_readme_test_command() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1].removeprefix("./") in ci


def test_readme_first_command_runs_the_demo() -> None:
    """The first README command, bounded: start, create/get/delete with curl, Ctrl-C, clean up."""
    command = readme_commands()[0]
    port = free_port()
    process = subprocess.Popen(
        [*command.split(), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any("Ctrl-C" in line for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        token = re.search(r"Bearer token\s*:\s*(\S+)", text)
        base = re.search(r"SCIM base URL\s*:\s*(\S+)", text)
        data = re.search(r"Directory data\s*:\s*(\S+)", text)
        assert token and base and data, text
        wait_healthy(base.group(1).removesuffix("/scim/v2"), process)
        curl = ["curl", "-s", "-H", f"Authorization: Bearer {token.group(1)}"]
        body = json.dumps(
            {
                "userName": "readme.user@example.com",
                "urn:ietf:params:scim:schemas:extension:posix:2.0:User": {"uidNumber": 10001},
            }
        )
        created = json.loads(
            subprocess.run(
                [
                    *curl,
                    "-H",
                    "Content-Type: application/scim+json",
                    "-d",
                    body,
                    f"{base.group(1)}/Users",
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout
        )
        user = f"{base.group(1)}/Users/{created['id']}"
        fetched = json.loads(
            subprocess.run(
                [*curl, user], capture_output=True, text=True, check=True, timeout=30
            ).stdout
        )
        assert fetched["userName"] == "readme.user@example.com"
        deleted = subprocess.run(
            [*curl, "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", user],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert deleted.stdout == "204"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    assert not Path(data.group(1)).exists(), "the throwaway directory was not removed"


def test_group_benchmark_runs_at_a_tiny_size() -> None:
    """scripts/bench_groups.py end to end on a group of 10, so it keeps working."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_groups.py"),
            "--sizes",
            "10",
            "--repeats",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for operation in ("PATCH add 1 member", "PATCH Remove 1", "PATCH replace", "GET with members"):
        assert re.search(rf"^\s+10\s+{operation}", result.stdout, re.M), result.stdout
    assert "reads no member value" in result.stdout
