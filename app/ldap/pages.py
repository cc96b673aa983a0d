"""Pages of a user search: ``startIndex``/``count`` (RFC 7644 §3.4.2.4) served by the directory.

A selective filter (Entra's ``userName eq``) is answered by one plain search.
Otherwise, with server-side sorting (RFC 2891) and virtual list views
(OpenLDAP's sssvlv overlay), the directory returns the total and the asked
window in one search, so a deep page costs the directory's sort of the
matches, never a walk from the first entry through Python. Every path orders
alike (see sorting.py): by the ``sortBy`` attribute when asked, then by login
name, so the pages of one listing agree.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.ldap.connection import Control, Directory, Session
from app.ldap.controls import (
    MAX_INT,
    VLV_ERROR,
    VLV_REQUEST_OID,
    read_vlv_response,
    sort_control,
    vlv_control,
)
from app.ldap.errors import DirectoryFailure
from app.ldap.mapping import UserMapping, UserRecord
from app.ldap.sorting import Order, by_login

log = logging.getLogger(__name__)

Finish = Callable[[Session, Sequence[UserRecord]], None]


@dataclass
class Page:
    """One page of a search: the total number of matches and the entries asked for."""

    total: int
    records: list[UserRecord] = field(default_factory=list)


class PageReader:
    """Reads one page of user entries matching an LDAP filter."""

    def __init__(self, directory: Directory, mapping: UserMapping, small_search: int) -> None:
        self.directory = directory
        self.mapping = mapping
        self.small_search = small_search
        self._vlv: bool | None = None

    def read(
        self,
        ldap_filter: str,
        *,
        selective: bool,
        start_index: int,
        count: int,
        finish: Finish,
        order: Order | None = None,
    ) -> Page:
        """The page in ``order`` (by login without one); ``finish`` completes its records
        on the same connection.

        A ``startIndex`` past the end of the results answers an empty page
        (RFC 7644 §3.4.2.4), so one past anything a directory can hold
        (2**31 - 1 entries, the bound of a VLV offset) is clamped to it.
        """
        start_index = min(max(start_index, 1), MAX_INT)
        count = min(max(count, 0), MAX_INT)
        window = start_index - 1 + count
        order = order or by_login(self.mapping)
        if selective and window <= self.small_search:
            with self.directory.session() as session:
                entries = session.search(
                    self.mapping.search_base,
                    ldap_filter,
                    self._with(self.mapping.read_attributes, order),
                    size_limit=self.small_search + 1,
                    action="search users",
                )
                if not session.limited:
                    records = [
                        self.mapping.record(e) for e in order.sort(entries, self.mapping.rdn)
                    ]
                    page = Page(len(records), records[start_index - 1 : window])
                    finish(session, page.records)
                    return page
        with self.directory.session(dedicated=True) as session:
            if self._vlv is None:
                self._vlv = self._supports_vlv(session)
            if self._vlv:
                page = self._vlv_page(session, ldap_filter, start_index, count, order)
            else:
                page = self._walk_page(session, ldap_filter, start_index, count, order)
            finish(session, page.records)
            return page

    def _supports_vlv(self, session: Session) -> bool:
        entries = session.search(
            "", "(objectClass=*)", ["supportedControl"], scope="BASE", action="read the root DSE"
        )
        controls = entries[0]["attributes"].get("supportedControl", []) if entries else []
        supported = VLV_REQUEST_OID in controls
        log.info("directory %s virtual list views", "supports" if supported else "lacks")
        return supported

    @staticmethod
    def _with(attributes: Sequence[str], order: Order) -> list[str]:
        """``attributes`` and the one sorted by."""
        if any(a.lower() == order.attribute.lower() for a in attributes):
            return list(attributes)
        return [*attributes, order.attribute]

    def _vlv_page(
        self, session: Session, ldap_filter: str, start_index: int, count: int, order: Order
    ) -> Page:
        controls: list[Control] = [
            sort_control(order.keys(self.mapping.rdn)),
            vlv_control(start_index, 0, max(count - 1, 0)),
        ]
        entries = session.search(
            self.mapping.search_base,
            ldap_filter,
            self.mapping.read_attributes if count else ["1.1"],
            controls=controls,
            tolerate=(VLV_ERROR,),
            action="search users",
        )
        vlv = read_vlv_response(session.conn.result)
        if vlv is None:
            raise DirectoryFailure(detail="The directory did not answer the paged search")
        if start_index > vlv.content_count or not count:
            return Page(vlv.content_count)
        return Page(vlv.content_count, [self.mapping.record(e) for e in entries[:count]])

    def _walk_page(
        self, session: Session, ldap_filter: str, start_index: int, count: int, order: Order
    ) -> Page:
        """Without VLV: one search for the names and sort keys, then one read per entry
        of the page."""
        names = session.search(
            self.mapping.search_base,
            ldap_filter,
            self._with([self.mapping.rdn], order),
            action="search users",
        )
        ordered = order.sort(names, self.mapping.rdn)
        window = ordered[start_index - 1 : start_index - 1 + count]
        records: list[UserRecord] = []
        for entry in window:
            found = session.search(
                str(entry["dn"]),
                "(objectClass=*)",
                self.mapping.read_attributes,
                scope="BASE",
                action="read user",
            )
            records.extend(self.mapping.record(e) for e in found)
        return Page(len(names), records)
