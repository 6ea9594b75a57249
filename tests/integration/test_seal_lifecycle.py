"""Seal lifecycle (R02) over a real seald process, real mutual TLS and a SoftHSM token.

A second administrator (周强) gets a client certificate from the test TLS CA and is
added to the allow-list, because resume and destroy need two admins.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
import pkcs11
import pytest
from fixture_layout import SealFixtures
from pkcs11 import Attribute

from sealapi.v1 import common_pb2, requests_pb2, seals_pb2, seals_pb2_grpc
from sealclient.client import SealClient
from sealclient.errors import SealClientError
from seald_testing.certs import SECOND_ADMIN, issue_client_cert
from seald_testing.daemon import SealDaemon, make_pdf, user_pin
from seald_testing.plugin import DaemonFactory

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
PENDING = requests_pb2.REQUEST_STATE_PENDING
APPROVED = requests_pb2.REQUEST_STATE_APPROVED
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
CHANGED_PIN = "20261129"  # test-only; the initial PIN must be changed before first use (R07)


def unlock_first_use(client: SealClient, fx: SealFixtures, seal_id: str) -> str:
    """Unlock the token as on first use; returns the PIN now in force."""
    client.change_pin(seal_id, user_pin(fx, seal_id), CHANGED_PIN)
    client.unlock(seal_id, CHANGED_PIN)
    return CHANGED_PIN




class Admins:
    def __init__(self, d: SealDaemon, second: tuple[Path, Path]) -> None:
        self.d = d
        self.second = second

    def stub(self, who: str) -> tuple[grpc.Channel, seals_pb2_grpc.SealRegistryServiceStub]:
        fx = self.d.fixtures
        if who == SECOND_ADMIN:
            cert, key = self.second
        else:
            cert, key = fx.principals[who].cert, fx.principals[who].key
        creds = grpc.ssl_channel_credentials(fx.tls_ca.read_bytes(), key.read_bytes(), cert.read_bytes())
        channel = grpc.secure_channel(self.d.target, creds)
        return channel, seals_pb2_grpc.SealRegistryServiceStub(channel)

    def call(self, who: str, rpc: str, **fields: str) -> seals_pb2.Seal:
        channel, stub = self.stub(who)
        with channel:
            result: seals_pb2.Seal = getattr(stub, rpc)(seals_pb2.SealLifecycleRequest(**fields), timeout=30)
            return result


def code_and_reason(ex: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    reason = dict(ex.trailing_metadata() or ()).get("seal-error-reason", "")  # type: ignore[attr-defined]
    return ex.code(), str(reason)  # type: ignore[attr-defined]


@pytest.fixture
def lifecycle_daemon(daemon_factory: DaemonFactory, tmp_path: Path) -> tuple[SealDaemon, Admins]:
    cert, key, fp = issue_client_cert(daemon_factory.fixtures(), SECOND_ADMIN, tmp_path)
    d = daemon_factory(
        lambda c: c.add_principal(
            SECOND_ADMIN,
            display_name="周强",
            roles=["admin"],
            seals=["official", "contract"],
            certificates=[fp],
        )
    )
    return d, Admins(d, (cert, key))


def submit(d: SealDaemon, tmp_path: Path, name: str = "contract.pdf") -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / name)
    with d.client("zhang.wei") as c:
        return c.submit(
            [pdf], seal_id="contract", reason="采购合同", category="contract", placement=PLACEMENT
        )


def test_r02_suspend_voids_approvals_at_once_and_survives_restart_until_two_admins_resume(
    lifecycle_daemon: tuple[SealDaemon, Admins], tmp_path: Path
) -> None:
    d, admins = lifecycle_daemon
    request = submit(d, tmp_path)
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        assert wang.approve(request.request_id).state == APPROVED
    # The token is locked, so the request waits APPROVED; suspend voids it before returning.
    seal = admins.call("chen.jie", "SuspendSeal", seal_id="contract", comment="审计期间停用")
    assert seal.status == common_pb2.SEAL_STATUS_SUSPENDED
    with d.client("zhang.wei") as z:
        after = z.get(request.request_id)
    assert after.state == PENDING and len(after.approvals) == 0
    assert "void" in after.state_reason
    # No new approval, no new request while suspended; custodian unlocking changes nothing.
    with d.client("li.na") as li, pytest.raises(SealClientError) as refused:
        li.approve(request.request_id)
    assert refused.value.reason == "seal_suspended"
    with d.client("liu.yang") as custodian:
        unlock_first_use(custodian, d.fixtures, "contract")
    with d.client("zhang.wei") as z, pytest.raises(SealClientError) as refused:
        z.submit(
            [make_pdf(tmp_path / "b.pdf")],
            seal_id="contract",
            reason="r",
            category="contract",
            placement=PLACEMENT,
        )
    assert refused.value.reason == "seal_suspended"

    d.stop()
    d.start()
    channel, stub = admins.stub("zhao.min")
    with channel:
        assert (
            stub.GetSeal(seals_pb2.GetSealRequest(seal_id="contract")).status
            == common_pb2.SEAL_STATUS_SUSPENDED
        )

    # Resume: one admin only proposes; the same admin cannot confirm; a second one can.
    proposed = admins.call("chen.jie", "ResumeSeal", seal_id="contract", proposal_id="resume-0001")
    assert proposed.status == common_pb2.SEAL_STATUS_SUSPENDED
    assert "second administrator" in proposed.status_reason
    with pytest.raises(grpc.RpcError) as same:
        admins.call("chen.jie", "ResumeSeal", seal_id="contract", proposal_id="resume-0001")
    assert code_and_reason(same.value) == (grpc.StatusCode.PERMISSION_DENIED, "same_admin")
    with pytest.raises(grpc.RpcError) as nopid:
        admins.call("chen.jie", "ResumeSeal", seal_id="contract")
    assert code_and_reason(nopid.value) == (grpc.StatusCode.INVALID_ARGUMENT, "proposal_id_required")
    resumed = admins.call(SECOND_ADMIN, "ResumeSeal", seal_id="contract", proposal_id="resume-0001")
    assert resumed.status == common_pb2.SEAL_STATUS_ACTIVE
    with pytest.raises(grpc.RpcError) as again:
        admins.call(SECOND_ADMIN, "ResumeSeal", seal_id="contract", proposal_id="resume-0001")
    assert code_and_reason(again.value)[0] == grpc.StatusCode.ALREADY_EXISTS

    db = sqlite3.connect(d.fixtures.state_dir / "seald.sqlite3")
    with db:
        actions = [
            r[0] for r in db.execute("SELECT action FROM seal_history WHERE seal_id='contract' ORDER BY id")
        ]
        events = [
            r[0] for r in db.execute("SELECT event FROM audit_log WHERE seal_id='contract' ORDER BY sequence")
        ]
    db.close()
    assert actions == ["suspend", "resume"]
    assert "request.approvals_voided" in events and "seal.lifecycle_proposed" in events


def test_r02_report_lost_survives_restart_and_is_never_resumed(
    lifecycle_daemon: tuple[SealDaemon, Admins], tmp_path: Path
) -> None:
    d, admins = lifecycle_daemon
    request = submit(d, tmp_path)
    with d.client("li.na") as li:
        li.approve(request.request_id)
    lost = admins.call("chen.jie", "ReportSealLost", seal_id="contract", comment="U盾遗失")
    assert lost.status == common_pb2.SEAL_STATUS_LOST
    d.kill()  # even a crash right after the call keeps it
    d.start()
    with d.client("zhang.wei") as z:
        assert len(z.get(request.request_id).approvals) == 0
    channel, stub = admins.stub("chen.jie")
    with channel:
        assert (
            stub.GetSeal(seals_pb2.GetSealRequest(seal_id="contract")).status == common_pb2.SEAL_STATUS_LOST
        )
    with pytest.raises(grpc.RpcError) as refused:  # refused already at the proposal
        admins.call("chen.jie", "ResumeSeal", seal_id="contract", proposal_id="resume-lost-1")
    assert code_and_reason(refused.value) == (grpc.StatusCode.FAILED_PRECONDITION, "seal_lost")


def test_r02_r15_destroy_needs_two_admins_and_deletes_the_key_on_the_token(
    lifecycle_daemon: tuple[SealDaemon, Admins], tmp_path: Path
) -> None:
    d, admins = lifecycle_daemon
    fx = d.fixtures
    with d.client("liu.yang") as custodian:
        pin = unlock_first_use(custodian, fx, "contract")
    admins.call("chen.jie", "DestroySeal", seal_id="contract", proposal_id="destroy-contract")
    key_label = fx.seals["contract"].key_label
    lib = pkcs11.lib(str(fx.module))
    lib.reinitialize()

    def objects_on_token() -> int:
        token = lib.get_token(token_label=fx.seals["contract"].token_label)
        with token.open() as session:  # public objects are visible without login
            return len(list(session.get_objects({Attribute.LABEL: key_label})))

    assert objects_on_token() >= 2  # certificate + public key still there after the proposal
    destroyed = admins.call(SECOND_ADMIN, "DestroySeal", seal_id="contract", proposal_id="destroy-contract")
    assert destroyed.status == common_pb2.SEAL_STATUS_DESTROYED
    lib.reinitialize()
    assert objects_on_token() == 0
    token = lib.get_token(token_label=fx.seals["contract"].token_label)
    with token.open(user_pin=pin) as session:
        assert list(session.get_objects({Attribute.LABEL: key_label})) == []
    # Final: nothing changes a destroyed seal any more.
    with pytest.raises(grpc.RpcError) as final:
        admins.call("chen.jie", "SuspendSeal", seal_id="contract")
    assert code_and_reason(final.value) == (grpc.StatusCode.FAILED_PRECONDITION, "seal_destroyed")


REGISTRY_RPCS = ("SuspendSeal", "ReportSealLost", "ResumeSeal", "DestroySeal")


def test_r04_every_non_admin_role_is_refused_every_lifecycle_rpc(
    lifecycle_daemon: tuple[SealDaemon, Admins],
) -> None:
    _, admins = lifecycle_daemon
    for who in ("zhang.wei", "li.na", "liu.yang", "zhao.min"):  # requester approver custodian auditor
        for rpc in REGISTRY_RPCS:
            with pytest.raises(grpc.RpcError) as refused:
                admins.call(who, rpc, seal_id="contract", proposal_id="p-12345678")
            expected = (grpc.StatusCode.PERMISSION_DENIED, "not_an_admin")
            assert code_and_reason(refused.value) == expected, (who, rpc)
    channel, stub = admins.stub("zhao.min")
    with channel:
        assert (
            stub.GetSeal(seals_pb2.GetSealRequest(seal_id="contract")).status == common_pb2.SEAL_STATUS_ACTIVE
        )
