"""How long a stock sssd host, left alone, keeps letting a disabled user in.

A user is provisioned through the real HTTP app (default settings, StartTLS to a TLS
sandbox) and disabled by Entra's legacy PATCH. Two stock sssd hosts (default caches,
nothing flushed) watch it: on the ``lookups`` host only the name service is asked
(``getent passwd``, ``id``, the key lookup: what a host does before any PAM call), on
the ``logins`` host every login path is tried. Each path is tried every ``interval``
seconds for ``duration`` seconds after the disable, then after an enable; the result is
when each path first and last let the user in.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.testclient import TestClient
from ldap3 import SUBTREE, Connection

from app.ldap.sandbox import SandboxDirectory
from app.main import create_app
from tests.conftest import TOKEN, make_settings
from tests.e2e.clients import ClientStack
from tests.e2e.matrix import PATHS, Login
from tests.e2e.setups import setups

LOOKUPS = ("getent passwd", "id", "key lookup")
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
POSIX = "urn:ietf:params:scim:schemas:extension:posix:2.0:User"


@dataclass
class Timeline:
    """When, in seconds after the SCIM change, a path let the user in and when not."""

    allowed: list[float] = field(default_factory=list)
    denied: list[float] = field(default_factory=list)

    def summary(self, expected: bool) -> str:
        right, wrong = (self.allowed, self.denied) if expected else (self.denied, self.allowed)
        state, other = ("allowed", "denied") if expected else ("denied", "allowed")
        first = f"first {state} at {min(right):.0f} s" if right else f"never {state}"
        last = f"last {other} at {max(wrong):.0f} s" if wrong else f"never {other}"
        return f"{first}, {last} ({len(right) + len(wrong)} tries)"


def _watch(
    stack: ClientStack, login: Login, paths: Sequence[str], duration: float, interval: float
) -> dict[str, Timeline]:
    started = time.monotonic()
    timelines = {path: Timeline() for path in paths}

    def one(path: str) -> None:
        while (now := time.monotonic() - started) <= duration:
            if PATHS[path](stack, login):
                timelines[path].allowed.append(now)
            else:
                timelines[path].denied.append(now)
            time.sleep(max(0.0, interval - (time.monotonic() - started - now)))

    with ThreadPoolExecutor(len(paths)) as pool:
        list(pool.map(one, paths))
    return timelines


def measure(directory: SandboxDirectory, identity: Path, duration: float, interval: float) -> str:
    """The report: per host and path, how the path behaved after disable and enable."""
    stock = next(setup for setup in setups(0) if setup.name == "stock sssd")
    workdir = Path("/tmp")
    hosts = {"lookups": stock.build(directory, workdir), "logins": stock.build(directory, workdir)}
    public_key = Path(f"{identity}.pub").read_text().strip()
    tag = uuid.uuid4().hex[:8]
    lines = []
    app = create_app(make_settings(directory))
    try:
        for host in hosts.values():
            host.start()
        with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as server:
            created = server.post(
                "/scim/v2/Users",
                json={
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": f"Cache.{tag}@Example.com",
                    "active": True,
                    "password": "Correct-Horse-7",
                    POSIX: {"sshPublicKeys": [public_key]},
                },
            )
            created.raise_for_status()
            user_id = created.json()["id"]
            login = Login(_login(directory, user_id), "Correct-Horse-7", public_key, identity)
            for name, host in hosts.items():
                paths = LOOKUPS if name == "lookups" else tuple(PATHS)
                warm = {path: PATHS[path](host, login) for path in paths}
                lines.append(f"{name} host before the disable: {warm}")
            for label, value, expected in (("disable", "False", False), ("enable", True, True)):
                response = server.patch(
                    f"/scim/v2/Users/{user_id}",
                    json={
                        "schemas": [PATCH_OP],
                        "Operations": [{"op": "Replace", "path": "active", "value": value}],
                    },
                )
                response.raise_for_status()
                with ThreadPoolExecutor(len(hosts)) as pool:
                    futures = {
                        name: pool.submit(
                            _watch,
                            host,
                            login,
                            LOOKUPS if name == "lookups" else tuple(PATHS),
                            duration,
                            interval,
                        )
                        for name, host in hosts.items()
                    }
                    for name, future in futures.items():
                        lines.append(f"after {label}, {name} host (tried every {interval:.0f} s):")
                        for path, timeline in future.result().items():
                            lines.append(f"  {path:18} {timeline.summary(expected)}")
            server.delete(f"/scim/v2/Users/{user_id}")
    finally:
        for host in hosts.values():
            host.stop()
    return "\n".join(lines)


def _login(directory: SandboxDirectory, user_id: str) -> str:
    conn = Connection(directory.url, directory.admin_dn, directory.admin_password, auto_bind=True)
    try:
        conn.search(directory.base_dn, f"(entryUUID={user_id})", SUBTREE, attributes=["uid"])
        return str(conn.entries[0].uid.value)
    finally:
        conn.unbind()
