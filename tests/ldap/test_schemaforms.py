"""The schema in slapd.conf form is the LDIF's, and a slapd.conf server loads it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from app.ldap.sandbox import SYSTEM_SCHEMA_DIR, find_slapd
from app.ldap.schemaforms import SCHEMAS, schema_text, slapd_conf_schema

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "app" / "ldap" / "schema"


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_shipped_schema_file_is_the_ldif_in_slapd_conf_form(name: str) -> None:
    assert schema_text(name, "schema") == slapd_conf_schema(schema_text(name, "ldif"))


def test_the_conversion_keeps_every_definition() -> None:
    ldif = schema_text("scim-ldap", "ldif")
    converted = slapd_conf_schema(ldif)
    assert converted.count("attributetype (") == ldif.count("olcAttributeTypes:")
    assert converted.count("objectclass (") == ldif.count("olcObjectClasses:")
    assert "NAME 'scimHiddenAccount'" in converted
    assert "include scim-ldap.schema" in converted
    assert "olc" not in converted


def test_a_slapd_conf_server_loads_it(tmp_path: Path) -> None:
    slaptest = find_slapd().with_name("slaptest")
    if not slaptest.exists():
        slaptest = Path(shutil.which("slaptest") or "/usr/sbin/slaptest")
    includes = [
        SYSTEM_SCHEMA_DIR / f"{n}.schema" for n in ("core", "cosine", "inetorgperson", "nis")
    ]
    includes += [SCHEMA_DIR / f"{n}.schema" for n in SCHEMAS]
    data = tmp_path / "data"
    data.mkdir()
    conf = tmp_path / "slapd.conf"
    conf.write_text(
        "\n".join(
            [
                *(f"include {path}" for path in includes),
                f"pidfile {tmp_path / 'slapd.pid'}",
                "moduleload back_mdb",
                "database mdb",
                "suffix dc=example,dc=org",
                f"directory {data}",
                "index objectClass eq",
                "",
            ]
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [str(slaptest), "-f", str(conf), "-u"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(
        conf.read_text(encoding="utf-8").replace(f"include {includes[3]}\n", ""), encoding="utf-8"
    )
    result = subprocess.run(
        [str(slaptest), "-f", str(broken), "-u"], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
