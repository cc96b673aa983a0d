"""Throwaway containers of entries made by hand, for the directory-level tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from ldap3 import BASE, SUBTREE, Connection

from app.ldap.dn import child_dn


class Scratch:
    """``ou=<unique>,<base>``, removed with everything below it by ``remove()``."""

    def __init__(self, conn: Connection, base_dn: str, prefix: str = "scratch") -> None:
        self.conn = conn
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.dn = child_dn("ou", name, base_dn)
        assert conn.add(self.dn, ["top", "organizationalUnit"], {"ou": name}), conn.result

    def child(self, name: str) -> str:
        return child_dn("cn", name, self.dn)

    def account(self, login: str, number: int) -> str:
        """A posixAccount made by hand (not by the server)."""
        dn = child_dn("uid", login, self.dn)
        attributes = {
            "uid": login,
            "cn": login,
            "uidNumber": str(number),
            "gidNumber": str(number),
            "homeDirectory": f"/home/{login}",
        }
        assert self.conn.add(dn, ["account", "posixAccount"], attributes), self.conn.result
        return dn

    def group(self, name: str, gid: int, members: Iterable[str] = ()) -> str:
        dn = self.child(name)
        attributes: dict[str, object] = {"cn": name, "gidNumber": str(gid)}
        if members:
            attributes["memberUid"] = list(members)
        assert self.conn.add(dn, ["posixGroup"], attributes), self.conn.result
        return dn

    def read(self, dn: str, *attributes: str) -> dict[str, list[str]] | None:
        """The attributes of an entry as lists of strings; None when it does not exist."""
        self.conn.search(dn, "(objectClass=*)", BASE, attributes=list(attributes) or ["*"])
        if not self.conn.entries:
            return None
        raw = self.conn.response[0]["raw_attributes"]
        return {k: [v.decode() for v in values] for k, values in raw.items()}

    def remove(self) -> None:
        self.conn.search(self.dn, "(objectClass=*)", SUBTREE, attributes=["1.1"])
        dns = [str(e["dn"]) for e in self.conn.response or [] if e.get("type") == "searchResEntry"]
        for dn in sorted(dns, key=lambda d: d.count(","), reverse=True):
            self.conn.delete(dn)
