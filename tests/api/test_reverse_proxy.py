"""The reverse-proxy examples of docs/reverse-proxy.md, run for real.

nginx, configured from the documentation's own example, terminates TLS with a
certificate from a private CA in front of a ``scim-ldap serve`` process on the
sandbox directory. Through it, links must carry the proxy's https address and an
over-size body must be refused; straight to the server, forwarded headers from a
peer not in ``http.trusted_proxies`` must change nothing. The Caddy example is
checked with ``caddy adapt`` and ``caddy validate``.
"""

from __future__ import annotations

import json
import re
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from app.ldap.sandbox import Sandbox
from tests.api.helpers import USERS, user_body
from tests.conftest import TOKEN
from tests.debian import tool
from tests.servers import serving
from tests.test_scripts import free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "reverse-proxy.md"
MAX_BODY = 1_048_576
UNTRUSTED_PEER = "127.0.0.2"
"""A loopback address other than the proxy's 127.0.0.1, so not in trusted_proxies."""


def example(language: str) -> str:
    """The first fenced ``language`` block of docs/reverse-proxy.md."""
    found = re.search(rf"^```{language}\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    assert found, f"docs/reverse-proxy.md has no {language} example"
    return found.group(1)


def substitute(text: str, pattern: str, replacement: str) -> str:
    changed, count = re.subn(pattern, replacement, text, flags=re.M)
    assert count == 1, f"the example should hold {pattern!r} once, found {count}"
    return changed


@dataclass
class Proxied:
    proxy: str
    """https://127.0.0.1:<port>, nginx."""
    server: str
    """http://127.0.0.1:<port>, the scim-ldap process itself."""
    ca_file: Path

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.proxy,
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
            trust_env=False,
        )


def nginx_config(server_port: int, proxy_port: int, cert: Path, key: Path, root: Path) -> str:
    site = example("nginx")
    site = substitute(site, r"^\s*listen 443 ssl;", f"    listen 127.0.0.1:{proxy_port} ssl;")
    site = substitute(site, r"^\s*listen \[::\]:443 ssl;\n", "")
    site = substitute(site, r"^\s*ssl_certificate\s+\S+;", f"    ssl_certificate {cert};")
    site = substitute(site, r"^\s*ssl_certificate_key\s+\S+;", f"    ssl_certificate_key {key};")
    site = substitute(
        site, r"proxy_pass http://127\.0\.0\.1:8080;", f"proxy_pass http://127.0.0.1:{server_port};"
    )
    temp = "\n".join(
        f"    {kind}_temp_path {root / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    return f"""daemon off;
master_process off;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 64; }}
http {{
    access_log {root / "access.log"};
{temp}
    uwsgi_temp_path {root / "uwsgi"};
    scgi_temp_path {root / "scgi"};
{site}
}}
"""


@pytest.fixture(scope="module")
def proxied(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    nginx = tool("nginx", "nginx")
    root = tmp_path_factory.mktemp("nginx")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = root / "cert.pem", root / "key.pem", root / "ca.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca_file))
    environment = {
        **sandbox.directory.environment(),
        "SCIM_LDAP_AUTH__TOKENS": json.dumps([TOKEN]),
        "SCIM_LDAP_HTTP__TRUSTED_PROXIES": json.dumps(["127.0.0.1"]),
        "SCIM_LDAP_HTTP__MAX_BODY_BYTES": str(MAX_BODY),
    }
    with serving([environment]) as (server,):
        proxy_port = free_port()
        config = root / "nginx.conf"
        server_port = int(server.rsplit(":", 1)[1])
        config.write_text(nginx_config(server_port, proxy_port, cert, key, root))
        checked = subprocess.run(
            [nginx, "-t", "-p", str(root), "-c", str(config), "-e", str(root / "error.log")],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        process = subprocess.Popen(
            [nginx, "-p", str(root), "-c", str(config), "-e", str(root / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        proxied = Proxied(f"https://127.0.0.1:{proxy_port}", server, ca_file)
        try:
            with proxied.client() as client:
                wait_for_proxy(client, process)
            yield proxied
        finally:
            process.send_signal(signal.SIGQUIT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_proxy(client: httpx.Client, process: subprocess.Popen[str]) -> None:
    for _ in range(100):
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {process.stderr.read() if process.stderr else ''}")
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("nginx did not answer")


@pytest.fixture
def created(proxied: Proxied) -> Iterator[httpx.Response]:
    with proxied.client() as client:
        response = client.post(USERS, json=user_body())
        assert response.status_code == 201, response.text
        yield response
        client.delete(f"{USERS}/{response.json()['id']}")


def test_links_carry_the_proxy_https_address(proxied: Proxied, created: httpx.Response) -> None:
    user: dict[str, Any] = created.json()
    expected = f"{proxied.proxy}{USERS}/{user['id']}"
    assert created.headers["location"] == expected
    assert user["meta"]["location"] == expected
    with proxied.client() as client:
        fetched = client.get(f"{USERS}/{user['id']}")
        listed = client.get(USERS, params={"filter": f'id eq "{user["id"]}"'})
        spoofed = client.get(
            f"{USERS}/{user['id']}",
            headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"},
        )
    assert fetched.status_code == 200
    assert fetched.json()["meta"]["location"] == expected
    assert [r["meta"]["location"] for r in listed.json()["Resources"]] == [expected]
    assert spoofed.json()["meta"]["location"] == expected


def test_an_over_size_body_is_refused_with_413(proxied: Proxied) -> None:
    padding = "x" * (MAX_BODY + 1)
    with proxied.client() as client:
        declared = client.post(USERS, json=user_body(displayName=padding))
        chunked = client.post(
            USERS,
            content=iter([b'{"displayName": "', padding.encode(), b'"}']),
            headers={"Content-Type": "application/scim+json"},
        )
        small = client.post(USERS, json=user_body(displayName="x" * (MAX_BODY // 2)))
    assert declared.status_code == 413
    assert "nginx" in declared.text, "the proxy, not the server, should refuse it"
    assert chunked.status_code == 413
    assert small.status_code != 413, small.text
    if small.status_code == 201:
        with proxied.client() as client:
            client.delete(f"{USERS}/{small.json()['id']}")


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    proxied: Proxied, created: httpx.Response
) -> None:
    user_id = created.json()["id"]
    direct = httpx.Client(
        base_url=proxied.server,
        transport=httpx.HTTPTransport(local_address=UNTRUSTED_PEER),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
        trust_env=False,
    )
    with direct:
        response = direct.get(
            f"{USERS}/{user_id}",
            headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["location"] == f"{proxied.server}{USERS}/{user_id}"
    assert "evil.example" not in response.text


def test_the_caddy_example_is_valid(tmp_path: Path) -> None:
    caddy = tool("caddy", "caddy")
    config = tmp_path / "Caddyfile"
    config.write_text(example("caddy"))
    environment = {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PATH": "/usr/bin:/bin",
    }
    adapted = subprocess.run(
        [caddy, "adapt", "--config", str(config), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert adapted.returncode == 0, adapted.stderr
    document = json.loads(adapted.stdout)
    routes = document["apps"]["http"]["servers"]["srv0"]["routes"]
    text = json.dumps(routes)
    assert '"max_size": 1048576' in text
    assert '"dial": "127.0.0.1:8080"' in text
    assert "scim.example.com" in text
    validated = subprocess.run(
        [caddy, "validate", "--config", str(config), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert validated.returncode == 0, validated.stderr
