"""The marker of unfinished writes: its encoding, and when a write may still be running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from app.ldap.pending import WRITER, Pending
from app.ldap.resume import FOREIGN_SETTLE, PendingWrites


def test_the_marker_round_trips() -> None:
    marker = Pending(
        op="update",
        login="jane.doe",
        dn="uid=jane.doe,ou=people,dc=example,dc=org",
        old_login="jdoe",
        join=("linux-login",),
        private_gid=10001,
        lock=True,
    )
    assert Pending.decode(marker.encode()) == marker
    assert marker.writer == WRITER
    assert "password" not in marker.encode().lower()


def test_damaged_markers_read_as_none() -> None:
    for value in ("", "{", "[]", '{"op": "explode", "login": "x", "dn": "y"}', '{"op": "create"}'):
        assert Pending.decode(value) is None


def test_a_write_is_busy_while_it_runs_here_or_may_run_elsewhere(client: TestClient) -> None:
    writes: PendingWrites = client.app.state.users.changes.pending  # type: ignore[attr-defined]
    mine = Pending(op="create", login="a", dn="uid=a")
    assert not writes.busy(mine)
    with writes.running(mine.token):
        assert writes.busy(mine)
    assert not writes.busy(mine)
    now = datetime.now(UTC)
    elsewhere = Pending(op="create", login="b", dn="uid=b", writer="other-host/1/x")
    assert writes.busy(elsewhere, now)
    assert not writes.busy(elsewhere, now + timedelta(seconds=FOREIGN_SETTLE + 1))
