"""/metrics: who may read it, and that each counter moves by what the requests did."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ldap3 import MODIFY_REPLACE, Connection
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.config import MetricsSettings, Settings
from app.ldap.connection import Session
from app.ldap.ids import Counter, NumberPool
from app.ldap.sandbox import Sandbox
from app.main import create_app
from tests.api.helpers import CORE, PATCH_OP, USERS, assert_error, unique
from tests.conftest import TOKEN, make_settings

METRICS_TOKEN = "metrics-token-0123456789"
GROUPS = "/scim/v2/Groups"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def metered(sandbox: Sandbox, **metrics: Any) -> FastAPI:
    settings = make_settings(sandbox.directory)
    settings.metrics = MetricsSettings(**metrics)
    return create_app(settings)


@pytest.fixture
def scim(sandbox: Sandbox) -> Iterator[TestClient]:
    app = metered(sandbox, token=SecretStr(METRICS_TOKEN))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum of the series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in scraped.items() if n == name and wanted <= set(have))


def test_metrics_are_off_without_a_token_of_their_own(sandbox: Sandbox) -> None:
    with TestClient(metered(sandbox)) as client:
        body = assert_error(client.get("/metrics"), 403)
        assert "metrics.token" in body["detail"]


def test_the_scim_token_does_not_open_the_metrics(sandbox: Sandbox) -> None:
    with TestClient(metered(sandbox, token=SecretStr(METRICS_TOKEN))) as client:
        assert_error(client.get("/metrics"), 401)
        assert_error(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}), 401)
        allowed = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert allowed.status_code == 200
        assert "scim_ldap_http_requests_total" in allowed.text


def test_public_metrics_need_no_token(sandbox: Sandbox) -> None:
    with TestClient(metered(sandbox, public=True)) as client:
        assert client.get("/metrics").status_code == 200


def test_the_metrics_token_is_checked_at_start_up() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        MetricsSettings(token=SecretStr("short"))


def warm_up(client: TestClient) -> None:
    """A first user and group, so that the counters and containers exist before counting."""
    user = client.post(USERS, json={"schemas": [CORE], "userName": f"{unique()}@example.com"})
    group = client.post(GROUPS, json={"schemas": [GROUP], "displayName": unique("g")})
    assert client.delete(f"{USERS}/{user.json()['id']}").status_code == 204
    assert client.delete(f"{GROUPS}/{group.json()['id']}").status_code == 204


def test_counters_move_by_what_the_requests_did(scim: TestClient) -> None:
    warm_up(scim)
    before = scrape(scim)
    created = scim.post(
        USERS,
        json={
            "schemas": [CORE],
            "userName": f"{unique()}@example.com",
            "urn:example:params:scim:schemas:unknown:1.0:User": {"shoeSize": 44},
        },
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert scim.get(f"{USERS}/{unique()}").status_code == 404
    for active in (False, True):
        changed = scim.patch(
            f"{USERS}/{user_id}",
            json={
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "active", "value": active}],
            },
        )
        assert changed.status_code == 200, changed.text
    renamed = scim.patch(
        f"{USERS}/{user_id}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "replace", "path": "userName", "value": f"{unique()}@example.com"}
            ],
        },
    )
    assert renamed.status_code == 200, renamed.text
    group = scim.post(GROUPS, json={"schemas": [GROUP], "displayName": unique("g")})
    assert group.status_code == 201, group.text
    assert scim.delete(f"{GROUPS}/{group.json()['id']}").status_code == 204
    assert scim.delete(f"{USERS}/{user_id}").status_code == 204
    assert (
        scim.get(USERS, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code
        == 401
    )
    after = scrape(scim)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "scim_ldap_http_requests_total"
    assert moved(requests, operation="Users.create", status="201") == 1
    assert moved(requests, operation="Users.get", status="404") == 1
    assert moved(requests, operation="Users.patch", status="200") == 3
    assert moved(requests, operation="Groups.create", status="201") == 1
    assert moved(requests, operation="Groups.delete", status="204") == 1
    assert moved(requests, operation="Users.delete", status="204") == 1
    assert moved(requests, operation="Users.list", status="401") == 1
    assert moved(requests, operation="Users.list", status="401", token="-") == 1
    assert moved(requests, operation="Users.create", status="201", token="token-1") == 1
    assert moved(requests, operation="metrics", status="200") == 1
    latency = "scim_ldap_http_request_duration_seconds"
    assert moved(f"{latency}_count", operation="Users.patch") == 3
    assert moved(f"{latency}_bucket", operation="Users.patch", le="+Inf") == 3
    assert moved(f"{latency}_sum", operation="Users.patch") > 0
    assert moved("scim_ldap_users_disabled_total") == 1
    assert moved("scim_ldap_users_enabled_total") == 1
    assert moved("scim_ldap_resources_deleted_total", resource_type="User") == 1
    assert moved("scim_ldap_resources_deleted_total", resource_type="Group") == 1
    assert moved("scim_ldap_attributes_unstored_total") == 1
    ldap = "scim_ldap_ldap_operations_total"
    assert moved(ldap, operation="modrdn", result="0") == 1
    assert moved(ldap, operation="add", result="0") == 3
    # The user, the group, and the uidNumber claim (given back after a first delete
    # asserting the renamed user's new userName fails: the claim names the old one).
    assert moved(ldap, operation="delete", result="0") == 3
    assert moved(ldap, operation="delete", result="122") == 1
    assert moved(ldap, operation="search", result="0") > 0
    assert moved(ldap, operation="extended", result="0") == 0
    assert value(after, "scim_ldap_ldap_pool_in_use") == 0
    assert value(after, "scim_ldap_ldap_pool_waiting") == 0
    assert value(after, "scim_ldap_ldap_pool_size") == Settings().ldap.pool_size
    assert value(after, "scim_ldap_directory_reachable") == 1


def test_a_lost_claim_counts_one_allocation_retry(
    scim: TestClient, ldap: Connection, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer moves the counter between the read and the claim: one retry."""
    pool_dn = f"cn=scim-ldap-ids,{sandbox.directory.base_dn}"
    original = NumberPool._read_counter
    raced: list[int] = []

    def read_then_race(pool: NumberPool, session: Session) -> Counter:
        counter = original(pool, session)
        if not raced and counter.value is not None and pool.attribute == "uidNumber":
            raced.append(counter.value)
            bumped = {"uidNumber": [(MODIFY_REPLACE, [str(counter.value + 1)])]}
            assert ldap.modify(pool_dn, bumped), ldap.result
        return counter

    assert (
        scim.post(USERS, json={"schemas": [CORE], "userName": f"{unique()}@x.org"}).status_code
        == 201
    )
    before = scrape(scim)
    monkeypatch.setattr(NumberPool, "_read_counter", read_then_race)
    created = scim.post(USERS, json={"schemas": [CORE], "userName": f"{unique()}@x.org"})
    assert created.status_code == 201, created.text
    after = scrape(scim)
    retries = "scim_ldap_id_allocation_retries_total"
    assert raced
    assert (
        value(after, retries, attribute="uidNumber") - value(before, retries, attribute="uidNumber")
        == 1
    )
    assert (
        created.json()["urn:ietf:params:scim:schemas:extension:posix:2.0:User"]["uidNumber"]
        != raced[0]
    )
    scim.delete(f"{USERS}/{created.json()['id']}")


def test_an_unreachable_directory_reads_zero(sandbox: Sandbox) -> None:
    settings = make_settings(sandbox.directory)
    settings.ldap.urls = ["ldap://127.0.0.1:9"]
    settings.ldap.connect_timeout = 1.0
    settings.metrics = MetricsSettings(public=True)
    app = create_app(settings, read_directory_schema=False)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 503
        down = client.get("/metrics").text
    assert "scim_ldap_directory_reachable 0.0" in down
    with TestClient(metered(sandbox, public=True)) as client:
        assert client.get("/readyz").status_code == 200
        assert "scim_ldap_directory_reachable 1.0" in client.get("/metrics").text
