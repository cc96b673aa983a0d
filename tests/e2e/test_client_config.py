"""client-config against real directories that the hosts could not use as configured."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.ldap.sandbox import Sandbox
from tests.e2e.setups import CLI_TIMEOUT, ROOT


def client_config(environment: dict[str, str], kind: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_LDAP_")}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-m", "app", "client-config", "--for", kind],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=CLI_TIMEOUT,
    )


@pytest.mark.parametrize("kind", ["sssd", "nslcd"])
def test_a_directory_without_tls_is_refused_with_the_fix(sandbox: Sandbox, kind: str) -> None:
    result = client_config(sandbox.directory.environment(), kind)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "offers no StartTLS" in result.stderr, result.stderr
    assert "olcTLSCertificateFile" in result.stderr
    assert "--allow-plain-ldap" in result.stderr


@pytest.mark.parametrize("kind", ["sssd", "nslcd"])
def test_a_directory_with_tls_the_server_does_not_use_is_refused_with_the_fix(
    tls_sandbox: Sandbox, kind: str
) -> None:
    environment = tls_sandbox.directory.environment()
    del environment["SCIM_LDAP_LDAP__START_TLS"], environment["SCIM_LDAP_LDAP__CA_FILE"]
    result = client_config(environment, kind)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "offers StartTLS: ldap.start_tls = true is all it takes" in result.stderr, result.stderr
