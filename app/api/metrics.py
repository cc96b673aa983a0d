"""``GET /metrics``: the Prometheus text exposition, outside the SCIM base.

Entra's bearer tokens are not accepted here: a scraper gets a token of its own
(``metrics.token``, sent as ``Authorization: Bearer``), so the credential
that can change the directory never sits in a monitoring system. Without
one the endpoint answers 403, unless ``metrics.public`` opens it (for a
port only a trusted network reaches). Runs on the event loop, so a stalled
directory never delays a scrape.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from scim2_models import ForbiddenException, UnauthorizedException

from app.config import MetricsSettings
from app.scim.unstored import UNSTORED, Unstored

router = APIRouter(tags=["Metrics"])


class UnstoredCollector(Collector):
    """Attributes accepted and not stored (app/scim/unstored.py): occurrences, distinct names."""

    def __init__(self, tally: Unstored) -> None:
        self.tally = tally

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        counts = dict(self.tally.counts)
        total = CounterMetricFamily(
            "scim_ldap_attributes_unstored",
            "Attributes accepted and not stored (each name is logged once).",
        )
        total.add_metric([], sum(counts.values()))
        yield total
        names = GaugeMetricFamily(
            "scim_ldap_attributes_unstored_names",
            "Distinct attribute names accepted and not stored so far.",
        )
        names.add_metric([], len(counts))
        yield names


REGISTRY.register(UnstoredCollector(UNSTORED))


def _allow(settings: MetricsSettings, authorization: str | None) -> None:
    if settings.token is None:
        if settings.public:
            return
        raise ForbiddenException(
            detail="/metrics is off: set metrics.token (or metrics.public = true)"
        )
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise UnauthorizedException(detail="A bearer token is required")
    if not hmac.compare_digest(
        presented.strip().encode(), settings.token.get_secret_value().encode()
    ):
        raise UnauthorizedException(detail="The bearer token is not valid")


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """The server's metrics in the Prometheus text format."""
    _allow(request.app.state.settings.metrics, authorization)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
