"""R03 over a real seald (issue 14 item 12): validity windows and scope, refused on the wire.

- a seal past its `valid_until`: a submit for it is refused;
- a category outside the seal's scope: refused;
- a principal outside its own validity window (ended, or not begun): every RPC of every
  sealapi.v1 service is refused, whatever roles the principal holds.

The windows are fixed dates far in the past (2020) or future (2999), so the test holds
at any hour and date the suite runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from fixture_layout import SealFixtures
from google.protobuf import descriptor, message_factory

from sealapi.v1 import audit_pb2, common_pb2, requests_pb2, seals_pb2, tokens_pb2, verify_pb2
from sealclient.errors import SealClientError
from seald_testing.certs import issue_client_cert
from seald_testing.config import DaemonConfig
from seald_testing.daemon import SealDaemon, make_pdf

PLACEMENT = common_pb2.Placement(page=1, x_mm=100, y_mm=100)
ENDED_AT = datetime(2020, 1, 1, tzinfo=UTC)
NOT_BEGUN_AT = datetime(2999, 1, 1, tzinfo=UTC)
ALL_ROLES = ["requester", "approver", "custodian", "admin", "auditor"]
WINDOWS = {"sun.ended": ("valid_until", ENDED_AT), "zhou.notyet": ("valid_from", NOT_BEGUN_AT)}
DESCRIPTORS = (requests_pb2, tokens_pb2, seals_pb2, verify_pb2, audit_pb2)
pytestmark = pytest.mark.clock  # validity windows against the wall clock (issue 14)


@pytest.fixture
def windows_daemon(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> Iterator[tuple[SealDaemon, dict[str, tuple[Path, Path]]]]:
    fx = fresh_seal_fixtures
    certs: dict[str, tuple[Path, Path]] = {}
    people: list[tuple[str, str, str]] = []
    for name in WINDOWS:
        cert, key, fp = issue_client_cert(fx, name, tmp_path)
        certs[name] = (cert, key)
        people.append((name, fp, name))

    def edit(c: DaemonConfig) -> None:
        # The official seal's authorisation ended in 2020.
        c.set_seal("official", valid_until=ENDED_AT)
        for name, fp, _ in people:
            key, when = WINDOWS[name]
            c.add_principal(
                name,
                roles=ALL_ROLES,
                seals=["official", "contract"],
                certificates=[fp],
                groups=["general_manager"],
                **{key: when},
            )

    d = SealDaemon(fx, edit)
    d.start()
    yield d, certs
    if d.proc is not None:
        d.stop()


def _submit(d: SealDaemon, tmp_path: Path, seal_id: str, category: str) -> requests_pb2.SealRequest:
    with d.client("zhang.wei") as z:
        return z.submit(
            [make_pdf(tmp_path / "r03.pdf")],
            seal_id=seal_id,
            reason="R03",
            category=category,
            placement=PLACEMENT,
        )


def _call(channel: grpc.Channel, method: descriptor.MethodDescriptor) -> tuple[grpc.StatusCode, str]:
    path = f"/{method.containing_service.full_name}/{method.name}"
    body: Any = message_factory.GetMessageClass(method.input_type)()
    out = message_factory.GetMessageClass(method.output_type)
    kwargs: dict[str, Any] = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": out.FromString,
    }
    try:
        if method.client_streaming:
            channel.stream_unary(path, **kwargs)(iter([body]), timeout=20)
        elif method.server_streaming:
            for _ in channel.unary_stream(path, **kwargs)(body, timeout=3):
                pass
        else:
            channel.unary_unary(path, **kwargs)(body, timeout=20)
    except grpc.RpcError as ex:
        reason = dict(ex.trailing_metadata() or ()).get("seal-error-reason", "")  # type: ignore[attr-defined]
        return ex.code(), str(reason)  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def test_r03_seal_past_valid_until_refuses_submit(
    windows_daemon: tuple[SealDaemon, dict[str, tuple[Path, Path]]], tmp_path: Path
) -> None:
    d, _ = windows_daemon
    with pytest.raises(SealClientError) as refused:
        _submit(d, tmp_path, "official", "contract")
    assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.reason == "outside_validity_window"
    assert "official" in refused.value.message and "2020-01-01" in refused.value.message
    # The other seal, inside its window, still takes the same submit.
    assert _submit(d, tmp_path, "contract", "contract").state == requests_pb2.REQUEST_STATE_PENDING


def test_r03_category_outside_the_seals_scope_is_refused(
    windows_daemon: tuple[SealDaemon, dict[str, tuple[Path, Path]]], tmp_path: Path
) -> None:
    d, _ = windows_daemon
    with pytest.raises(SealClientError) as refused:
        _submit(d, tmp_path, "contract", "letter")  # the contract seal's scope: contract only
    assert refused.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.reason == "category_out_of_scope"
    with d.client("zhang.wei") as z:
        assert [r for r in z.list() if r.category == "letter"] == []


def test_r03_principal_outside_its_window_is_refused_by_every_rpc(
    windows_daemon: tuple[SealDaemon, dict[str, tuple[Path, Path]]],
) -> None:
    d, certs = windows_daemon
    methods = [
        method
        for module in DESCRIPTORS
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]
    assert len(methods) > 30
    problems = []
    for name, (cert, key) in certs.items():
        creds = grpc.ssl_channel_credentials(
            d.fixtures.tls_ca.read_bytes(), key.read_bytes(), cert.read_bytes()
        )
        with grpc.secure_channel(d.target, creds) as channel:
            for method in methods:
                answer = _call(channel, method)
                if answer != (grpc.StatusCode.PERMISSION_DENIED, "outside_validity_window"):
                    problems.append(f"{name} {method.name}: {answer[0].name} {answer[1]}")
    assert problems == [], "\n".join(problems)
    # The same roles inside their window are let through (the window, not a role, refused).
    li = d.fixtures.principals["li.na"]
    creds = grpc.ssl_channel_credentials(
        d.fixtures.tls_ca.read_bytes(), li.key.read_bytes(), li.cert.read_bytes()
    )
    with grpc.secure_channel(d.target, creds) as channel:
        (list_seals,) = [m for m in methods if m.name == "ListSeals"]
        assert _call(channel, list_seals)[0] == grpc.StatusCode.OK
