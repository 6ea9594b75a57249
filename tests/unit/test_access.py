"""R04 access decisions (seald.domain.access) as a table: who may see or do what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from seald.domain import access
from seald.domain.errors import NotFound, PermissionDenied
from seald.domain.model import Placement, Principal, RequestState, Role, SealRequest

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def person(name: str, *roles: Role, seals: tuple[str, ...] = ("contract",)) -> Principal:
    return Principal(name, name, frozenset(roles), frozenset(seals))


REQUEST = SealRequest(
    request_id="r1",
    seal_id="contract",
    requester="zhang.wei",
    reason="sign",
    category="contract",
    placement=Placement(page=0, x_mm=10.0, y_mm=10.0, size_mm=40.0),
    documents=(),
    state=RequestState.PENDING,
    required_approvals=2,
    approval_digest="",
    seal_certificate_sha256="",
    created_at=NOW,
    updated_at=NOW,
    expires_at=NOW + timedelta(hours=1),
    host="h",
)

REQUESTER = person("zhang.wei", Role.REQUESTER)
OTHER_REQUESTER = person("liu.yang", Role.REQUESTER)
APPROVER = person("li.na", Role.APPROVER)
CUSTODIAN = person("chen.jie", Role.CUSTODIAN)
ADMIN = person("admin", Role.ADMIN)
AUDITOR = person("audit", Role.AUDITOR)
OTHER_SEAL_APPROVER = person("wang.fang", Role.APPROVER, seals=("finance",))
OTHER_SEAL_AUDITOR = person("qian.li", Role.AUDITOR, seals=("finance",))

# who: (view, preview and read the originals (one rule), download sealed)
REQUEST_TABLE = [
    (REQUESTER, True, True, True),
    (OTHER_REQUESTER, False, False, False),
    (APPROVER, True, True, False),
    (CUSTODIAN, True, False, False),
    (ADMIN, True, True, False),
    (AUDITOR, True, True, True),
    (OTHER_SEAL_APPROVER, False, False, False),
    (OTHER_SEAL_AUDITOR, False, False, False),
]


def _allowed(check: Callable[[Principal, SealRequest], None], who: Principal) -> bool:
    try:
        check(who, REQUEST)
    except (PermissionDenied, NotFound):  # NotFound: someone else's request (issue 14)
        return False
    return True


@pytest.mark.parametrize(
    ("who", "view", "preview", "download"), REQUEST_TABLE, ids=lambda v: getattr(v, "name", "")
)
def test_r04_request_access_table(who: Principal, view: bool, preview: bool, download: bool) -> None:
    assert access.can_view(who, REQUEST) is view
    assert _allowed(access.require_visible, who) is view
    assert access.can_preview(who, REQUEST) is preview
    assert _allowed(access.require_may_preview, who) is preview
    assert access.can_read_content(who, REQUEST) is preview
    assert _allowed(access.require_may_read_content, who) is preview
    assert access.can_download_sealed(who, REQUEST) is download
    assert _allowed(access.require_may_download_sealed, who) is download


def test_r04_refusals_name_their_reason() -> None:
    reasons = {}
    for check in (
        access.require_may_preview,
        access.require_may_read_content,
        access.require_may_download_sealed,
    ):
        with pytest.raises(PermissionDenied) as refused:
            check(OTHER_REQUESTER, REQUEST)
        reasons[check.__name__] = refused.value.reason
    assert reasons == {
        "require_may_preview": "not_allowed_to_preview",
        "require_may_read_content": "not_allowed_to_read",
        "require_may_download_sealed": "not_the_requester",
    }
    # Someone else's request is answered exactly like an unknown id (issue 14).
    with pytest.raises(NotFound) as hidden:
        access.require_visible(OTHER_REQUESTER, REQUEST)
    assert (hidden.value.reason, hidden.value.message) == (
        "request_not_found",
        "no request 'r1'; check the id (sealctl list shows your requests)",
    )


# who: (submit for "contract", any role on "contract", read audit, create backup)
PRINCIPAL_TABLE = [
    (REQUESTER, True, True, False, False),
    (APPROVER, False, True, False, False),
    (CUSTODIAN, False, True, False, False),
    (ADMIN, False, True, True, True),
    (AUDITOR, False, True, True, False),
    (OTHER_SEAL_APPROVER, False, False, False, False),
    (person("nobody", seals=()), False, False, False, False),
]


@pytest.mark.parametrize(
    ("who", "submit", "on_seal", "audit", "backup"), PRINCIPAL_TABLE, ids=lambda v: getattr(v, "name", "")
)
def test_r04_seal_and_role_access_table(
    who: Principal, submit: bool, on_seal: bool, audit: bool, backup: bool
) -> None:
    def ok(check: Callable[[], None]) -> bool:
        try:
            check()
        except PermissionDenied:
            return False
        return True

    assert ok(lambda: access.require_requester(who, "contract")) is submit
    assert ok(lambda: access.require_role_on_seal(who, "contract")) is on_seal
    assert ok(lambda: access.require_auditor(who)) is audit
    # Issue 16: archive renewal is for exactly those who read the audit trail.
    assert ok(lambda: access.require_archive_operator(who)) is audit
    assert ok(lambda: access.require_admin(who)) is backup


def test_r04_visible_seals_are_the_principals_own() -> None:
    both = person("x", Role.APPROVER, seals=("contract", "finance"))
    assert access.visible_seals(both, ["finance", "contract", "hr"]) == ["contract", "finance"]
    assert access.visible_seals(both, ["finance", "contract", "hr"], "finance") == ["finance"]
    with pytest.raises(PermissionDenied):
        access.visible_seals(both, ["finance", "contract", "hr"], "hr")


def test_watch_shows_only_visible_requests_matching_the_filters() -> None:
    assert access.watch_wants(APPROVER, REQUEST)
    assert access.watch_wants(APPROVER, REQUEST, request_id="r1", seal_id="contract")
    assert not access.watch_wants(APPROVER, REQUEST, request_id="r2")
    assert not access.watch_wants(APPROVER, REQUEST, seal_id="finance")
    assert not access.watch_wants(OTHER_SEAL_APPROVER, REQUEST)
