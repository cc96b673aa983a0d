"""The Prometheus metrics of the server (prometheus-client, the default registry).

The server runs as one process, so the default registry holds everything;
``/metrics`` (app/api/metrics.py) serves it. Labels take values from small
fixed sets (operation names, LDAP result codes, HTTP statuses), never from
what a client sends.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

PREFIX = "scim_ldap"

disable_created_metrics()  # type: ignore[no-untyped-call]

REQUESTS = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests answered, by SCIM operation, status and the name of the token used.",
    ["operation", "status", "token"],
)
LATENCY = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "Time to answer an HTTP request, by SCIM operation.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0),
)
LDAP_OPERATIONS = Counter(
    f"{PREFIX}_ldap_operations",
    "LDAP operations sent, by kind and result code ('unavailable': no answer came).",
    ["operation", "result"],
)
LDAP_LATENCY = Histogram(
    f"{PREFIX}_ldap_operation_duration_seconds",
    "Time the directory took to answer an LDAP operation, by kind.",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ALLOCATION_RETRIES = Counter(
    f"{PREFIX}_id_allocation_retries",
    "uidNumber/gidNumber claims lost to another writer and tried again.",
    ["attribute"],
)
DISABLES = Counter(f"{PREFIX}_users_disabled", "Users disabled (active set to false).")
ENABLES = Counter(f"{PREFIX}_users_enabled", "Disabled users enabled again.")
DELETES = Counter(
    f"{PREFIX}_resources_deleted", "Users and groups deleted (or archived).", ["resource_type"]
)
POOL_IN_USE = Gauge(f"{PREFIX}_ldap_pool_in_use", "Directory connections lent to requests.")
POOL_WAITING = Gauge(
    f"{PREFIX}_ldap_pool_waiting", "Requests waiting for a free directory connection."
)
POOL_SIZE = Gauge(f"{PREFIX}_ldap_pool_size", "Directory connections the pool may open.")
REACHABLE = Gauge(
    f"{PREFIX}_directory_reachable",
    "1 when the last connection attempt or round trip reached the directory, 0 when none did.",
)
for operation in ("search", "add", "modify", "modrdn", "delete", "compare", "extended"):
    LDAP_LATENCY.labels(operation)
DELETES.labels("User")
DELETES.labels("Group")
ALLOCATION_RETRIES.labels("uidNumber")
ALLOCATION_RETRIES.labels("gidNumber")


def observe_pool(in_use: Callable[[], int], waiting: Callable[[], int], size: int) -> None:
    """Read the pool's gauges from the running server's pool at each scrape."""
    POOL_IN_USE.set_function(in_use)
    POOL_WAITING.set_function(waiting)
    POOL_SIZE.set(size)


def ldap_result(kind: str, code: int | None, seconds: float) -> None:
    """Count one LDAP operation and its result code (None: the connection failed)."""
    LDAP_OPERATIONS.labels(kind, "unavailable" if code is None else str(code)).inc()
    LDAP_LATENCY.labels(kind).observe(seconds)
