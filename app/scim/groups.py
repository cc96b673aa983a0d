"""The SCIM Group operations (RFC 7643 §4.2, RFC 7644 §3.3-§3.6) over the directory.

What Entra sends (ENTRA.md §3): a POST without members and with Microsoft's
extra schema URI, members added and removed afterwards by PATCH, several in
one operation, in both dialects — the legacy ``Remove`` with a value list
removes only the listed members — reads that exclude ``members``, and 204 for
a PATCH. Members are user or group ids; an id the directory does not hold is
400 ``invalidValue`` naming it. Adding a present member or removing an absent
one is not an error. Operations of one PATCH apply in order, so an add and a
remove of the same member leave what the last of them says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scim2_models import (
    InvalidPathException,
    InvalidSyntaxException,
    InvalidValueException,
    MutabilityException,
    NoTargetException,
)
from scim2_models.path import AttrPath, CompareOperator, Comparison, Path, ValuePath

from app import metrics
from app.config import Settings
from app.ldap.groupentries import GroupDirectory, GroupRecord
from app.ldap.groupsearch import GroupFilterBuilder
from app.ldap.search import TRUE
from app.scim.document import MAX_STRING
from app.scim.filters import parse_filter
from app.scim.patch import parse_patch
from app.scim.resource import int_param, meta, parse_if_match, project
from app.scim.unstored import UNSTORED

CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
POSIX_GROUP = "urn:ietf:params:scim:schemas:extension:posix:2.0:Group"
MICROSOFT_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
_READ_ONLY = frozenset({"id", "meta", "schemas"})
MAX_MEMBERS_PER_REQUEST = 10_000


@dataclass
class GroupChange:
    """What a PUT or PATCH asks of a group: its new name and id, and its members' changes."""

    display_name: str
    external_id: str | None
    gid_number: int | None
    add: dict[str, None] = field(default_factory=dict)
    remove: dict[str, None] = field(default_factory=dict)
    members: dict[str, None] | None = None
    """The whole membership when the request sets it, in order; None when it changes some."""

    def adding(self, ids: list[str]) -> None:
        for member in ids:
            if self.members is not None:
                self.members[member] = None
            else:
                self.remove.pop(member, None)
                self.add[member] = None

    def removing(self, ids: list[str]) -> None:
        for member in ids:
            if self.members is not None:
                self.members.pop(member, None)
            else:
                self.add.pop(member, None)
                self.remove[member] = None

    def replacing(self, ids: list[str]) -> None:
        self.add.clear()
        self.remove.clear()
        self.members = dict.fromkeys(ids)


def _text(value: Any, name: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidValueException(detail=f"{name} is required and cannot be empty")
        return None
    if not isinstance(value, str):
        raise InvalidValueException(detail=f"{name} must be a string")
    if len(value) > MAX_STRING or "\x00" in value:
        raise InvalidValueException(
            detail=f"{name} must be a string of at most {MAX_STRING} characters without NUL"
        )
    return value


def _gid(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidValueException(detail=f"{POSIX_GROUP}:gidNumber must be an integer")
    try:
        number = int(str(value).strip()) if isinstance(value, int | str) else None
    except ValueError:
        number = None
    if number is None or not 0 < number < 2**31:
        raise InvalidValueException(
            detail=f"{POSIX_GROUP}:gidNumber must be an integer between 1 and 2147483647"
        )
    return number


def _member_ids(value: Any) -> list[str]:
    """``[{"value": id, "$ref": ...}, ...]`` (or one such object) -> the ids."""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_MEMBERS_PER_REQUEST:
        raise InvalidValueException(
            detail=f"at most {MAX_MEMBERS_PER_REQUEST} members per operation"
        )
    ids = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            ids.append(item)
            continue
        if not isinstance(item, dict):
            raise InvalidValueException(detail='each member must be {"value": "<id>"}')
        by_name = {str(k).lower(): v for k, v in item.items()}
        member = by_name.get("value")
        if not isinstance(member, str) or not member:
            raise InvalidValueException(detail='each member must be {"value": "<id>"}')
        ids.append(member)
    return ids


def _members_filter_id(path: ValuePath) -> str:
    node = path.val_filter
    if (
        isinstance(node, Comparison)
        and node.attr_path.attr.lower() == "value"
        and node.op == CompareOperator.eq
        and isinstance(node.value, str)
    ):
        return node.value
    raise InvalidPathException(detail='members can be filtered with value eq "<id>" only')


class GroupService:
    """Turns SCIM Group requests into directory operations and records into SCIM bodies."""

    def __init__(self, settings: Settings, groups: GroupDirectory) -> None:
        self.settings = settings
        self.groups = groups

    # ---- rendering

    def render(self, record: GroupRecord, base: str) -> dict[str, Any]:
        location = f"{base}/Groups/{record.id}"
        doc: dict[str, Any] = {"schemas": [CORE_GROUP, POSIX_GROUP], "id": record.id}
        if record.external_id:
            doc["externalId"] = record.external_id
        doc["displayName"] = record.display_name
        if record.members is not None:
            doc["members"] = [
                {"value": m.id, "$ref": f"{base}/{m.kind}s/{m.id}", "type": m.kind}
                for m in record.members
            ]
        doc[POSIX_GROUP] = {"gidNumber": record.gid_number}
        doc["meta"] = meta("Group", location, record.created, record.modified, record.version)
        return doc

    @staticmethod
    def wants_members(attributes: list[str] | None, excluded: list[str] | None) -> bool:
        """Whether an answer shows members: ``excludedAttributes=members`` never reads them."""

        def named(paths: list[str]) -> bool:
            return any(
                p.strip().lower() in ("members", f"{CORE_GROUP.lower()}:members")
                or p.strip().lower().startswith(("members.", f"{CORE_GROUP.lower()}:members."))
                for p in paths
            )

        if excluded and named(excluded):
            return False
        return not attributes or named(attributes)

    # ---- reads

    def get(
        self, group_id: str, base: str, attributes: list[str] | None, excluded: list[str] | None
    ) -> tuple[dict[str, Any], str | None]:
        record = self.groups.get(group_id, members=self.wants_members(attributes, excluded))
        body = project(self.render(record, base), attributes, excluded, [POSIX_GROUP], CORE_GROUP)
        return body, record.version

    def search(
        self,
        base: str,
        *,
        filter_text: str | None,
        start_index: str | None,
        count: str | None,
        attributes: list[str] | None,
        excluded: list[str] | None,
    ) -> dict[str, Any]:
        http = self.settings.http
        start = max(int_param("startIndex", start_index, 1), 1)
        size = min(max(int_param("count", count, http.default_page_size), 0), http.max_page_size)
        condition = TRUE
        if filter_text is not None and filter_text.strip():
            node = parse_filter(filter_text, http.max_filter_length, http.max_filter_terms)
            condition = GroupFilterBuilder().visit(node)
        total, records = self.groups.search(
            condition, start, size, members=self.wants_members(attributes, excluded)
        )
        resources = []
        for record in records:
            resources.append(
                project(self.render(record, base), attributes, excluded, [POSIX_GROUP], CORE_GROUP)
            )
        return {
            "schemas": [LIST_RESPONSE],
            "totalResults": total,
            "itemsPerPage": len(resources),
            "startIndex": start,
            "Resources": resources,
        }

    # ---- writes

    def create(self, body: Any, base: str) -> tuple[dict[str, Any], str | None]:
        change = self._loaded(body)
        record = self.groups.create(
            change.display_name,
            external_id=change.external_id,
            gid_number=change.gid_number,
            member_ids=list(change.members or {}),
        )
        return self.render(record, base), record.version

    def replace(
        self, group_id: str, body: Any, if_match: str | None, base: str
    ) -> tuple[dict[str, Any], str | None]:
        change = self._loaded(body)
        current = self.groups.get(group_id, members=False)
        record = self.groups.update(
            current,
            display_name=change.display_name,
            external_id=change.external_id,
            add=[],
            remove=[],
            replace_members=list(change.members or {}),
            if_match=parse_if_match(if_match),
            members=True,
            gid_number=change.gid_number,
        )
        return self.render(record, base), record.version

    def patch(self, group_id: str, body: Any, if_match: str | None) -> None:
        operations = parse_patch(body)
        current = self.groups.get(group_id, members=False)
        change = GroupChange(current.display_name, current.external_id, None)
        for op, path, value in operations:
            self._apply(change, op, path, value)
        self.groups.update(
            current,
            display_name=change.display_name,
            external_id=change.external_id,
            add=list(change.add),
            remove=list(change.remove),
            replace_members=None if change.members is None else list(change.members),
            if_match=parse_if_match(if_match),
            gid_number=change.gid_number,
        )

    def delete(self, group_id: str, if_match: str | None) -> None:
        self.groups.delete(group_id, parse_if_match(if_match))
        metrics.DELETES.labels("Group").inc()

    # ---- bodies and operations

    def _loaded(self, body: Any) -> GroupChange:
        if not isinstance(body, dict):
            raise InvalidSyntaxException(detail="a Group must be a JSON object")
        schemas = body.get("schemas")
        if schemas is not None and (
            not isinstance(schemas, list) or CORE_GROUP not in [str(s) for s in schemas]
        ):
            raise InvalidValueException(detail=f"schemas must contain {CORE_GROUP}")
        by_name = {str(k).lower(): (k, v) for k, v in body.items()}
        display = _text(by_name.get("displayname", (None, None))[1], "displayName", required=True)
        change = GroupChange(str(display), None, None)
        change.replacing([])
        for lowered, (key, value) in by_name.items():
            if lowered in _READ_ONLY or lowered == "displayname":
                continue
            self._apply(change, "add", key, value, path_less=True)
        return change

    def _apply(
        self, change: GroupChange, op: str, path: str | None, value: Any, *, path_less: bool = False
    ) -> None:
        if path is None or path == "":
            if op == "remove":
                raise NoTargetException(detail="remove needs a path")
            if not isinstance(value, dict):
                raise InvalidValueException(detail=f"{op} without a path needs an object value")
            for key, item in value.items():
                self._apply(change, op, str(key), item, path_less=True)
            return
        lowered = path.lower()
        if lowered in (MICROSOFT_GROUP.lower(), "schemas"):
            return
        if lowered == POSIX_GROUP.lower():
            if isinstance(value, dict):
                for key, item in value.items():
                    self._apply(change, op, f"{POSIX_GROUP}:{key}", item, path_less=True)
            return
        if lowered.startswith(CORE_GROUP.lower() + ":"):
            path = path[len(CORE_GROUP) + 1 :]
            lowered = path.lower()
        if lowered == f"{POSIX_GROUP.lower()}:gidnumber":
            if op == "remove":
                raise MutabilityException(detail="gidNumber is required and cannot be removed")
            change.gid_number = _gid(value)
            return
        if lowered == "displayname":
            if op == "remove":
                raise MutabilityException(detail="displayName is required and cannot be removed")
            change.display_name = str(_text(value, "displayName", required=True))
            return
        if lowered == "externalid":
            change.external_id = None if op == "remove" else _text(value, "externalId")
            return
        if lowered in _READ_ONLY:
            if path_less:
                return
            raise MutabilityException(detail=f"{path} is read-only")
        if lowered == "members":
            self._members(change, op, value)
            return
        try:
            node = Path(path).ast
        except InvalidPathException:
            if path_less:
                UNSTORED.note(f"Group:{path}")
                return
            raise InvalidPathException(detail=f"{path!r} is not a valid attribute path") from None
        if isinstance(node, ValuePath) and node.attr_path.attr.lower() == "members":
            member = _members_filter_id(node)
            if op != "remove":
                raise InvalidPathException(
                    detail="members[value eq ...] can only be removed; add members with "
                    'path "members"'
                )
            change.removing([member])
            return
        if isinstance(node, AttrPath | ValuePath):
            UNSTORED.note(f"Group:{path}")
            return
        raise InvalidPathException(detail=f"{path!r} is not an attribute path")

    @staticmethod
    def _members(change: GroupChange, op: str, value: Any) -> None:
        if op == "remove":
            if value is None or value == []:
                change.replacing([])
            else:
                change.removing(_member_ids(value))
        elif op == "replace":
            change.replacing(_member_ids(value) if value is not None else [])
        else:
            change.adding(_member_ids(value) if value is not None else [])
