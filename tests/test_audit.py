"""The audit trail's sinks: stdout, a file reopened after rotation, syslog, off."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from app import audit
from app.config import AuditSettings

SUCCESS = {"result": 0, "description": "success"}


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    audit.configure(AuditSettings())


def test_stdout_gets_one_json_object_per_change(capsys: pytest.CaptureFixture[str]) -> None:
    audit.configure(AuditSettings(sink="stdout"))
    audit.record(audit.MODIFY, "uid=a,ou=people,dc=x", ["shadowExpire", "objectClass"], SUCCESS)
    out, err = capsys.readouterr()
    [line] = out.splitlines()
    parsed = json.loads(line)
    assert parsed["dn"] == "uid=a,ou=people,dc=x"
    assert parsed["attributes"] == ["objectClass", "shadowExpire"]
    assert parsed["result"] == {"code": 0, "description": "success"}
    assert (parsed["request_id"], parsed["token"], parsed["operation"]) == (None, "-", "-")
    assert err == ""


def test_a_file_is_reopened_when_it_is_rotated(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit.configure(AuditSettings(sink="file", path=path))
    audit.record(audit.ADD, "cn=one", ["cn"], SUCCESS)
    path.rename(tmp_path / "audit.jsonl.1")
    audit.record(audit.DELETE, "cn=two", [], None)
    [rotated] = (tmp_path / "audit.jsonl.1").read_text().splitlines()
    [fresh] = path.read_text().splitlines()
    assert json.loads(rotated)["dn"] == "cn=one"
    assert json.loads(fresh)["result"] == {"code": None, "description": "no answer"}


def test_syslog_gets_authpriv_lines() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        port = server.getsockname()[1]
        audit.configure(AuditSettings(sink="syslog", syslog_address=f"127.0.0.1:{port}"))
        audit.record(audit.MODRDN, "uid=a,dc=x", ["uid"], SUCCESS, new_dn="uid=b,dc=x")
        datagram = server.recv(65536).decode()
    assert datagram.startswith("<86>scim-ldap: {")
    assert json.loads(datagram.removeprefix("<86>scim-ldap: ").rstrip("\x00"))["new_dn"] == (
        "uid=b,dc=x"
    )


def test_off_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    audit.configure(AuditSettings(sink="off"))
    audit.record(audit.ADD, "cn=one", ["cn"], SUCCESS)
    assert capsys.readouterr().out == ""


def test_a_sink_that_cannot_be_opened_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(audit.AuditSinkError, match="cannot open"):
        audit.configure(AuditSettings(sink="file", path=tmp_path / "missing" / "audit.jsonl"))


@pytest.mark.parametrize(
    "settings", [{"sink": "file"}, {"syslog_address": "nohost"}, {"syslog_address": "h:99999"}]
)
def test_settings_are_checked(settings: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        AuditSettings.model_validate(settings)
