"""Issue 17 over a real seald (real mutual TLS, SoftHSM token, SQLite on disk) and a
real HTTPS webhook receiver on loopback (certificates from the test PKI).

The fixtures' unlisted client certificate is put on the allow-list as a third person
(a delegate, or legal counsel), so every party approves with their own key.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from fixture_layout import SealFixtures

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.client import SealClient
from sealclient.errors import SealClientError
from sealclient.evidence import load_trust, verify_package
from seald_testing.config import ConfigEdit, DaemonConfig, chain
from seald_testing.daemon import SealDaemon, make_pdf, unlock_first_use
from seald_testing.webhook_receiver import WebhookReceiver

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
SECRET = b"webhook-secret-0123456789abcdef"


def third_person(fx: SealFixtures, name: str, groups: list[str] | None = None) -> dict[str, object]:
    """The unlisted certificate as an approver of the contract seal."""
    entry: dict[str, object] = {
        "name": name,
        "display_name": name,
        "roles": ["approver"],
        "seals": ["contract"],
        "certificates": [fx.unlisted.fingerprint_sha256],
    }
    if groups:
        entry["groups"] = groups
    return entry


def edit(
    fx: SealFixtures,
    *,
    seal: dict[str, object] | None = None,
    principals: dict[str, object] | None = None,
    tail: dict[str, object] | None = None,
) -> ConfigEdit:
    """Tables added to the contract seal (policy, quota), one more principal, top-level tables."""

    def apply(config: DaemonConfig) -> None:
        config.set_seal("contract", **(seal or {}))
        if principals is not None:
            config.add_principal(**principals)  # type: ignore[arg-type]
        for table, values in (tail or {}).items():
            config.set(table, **values)  # type: ignore[arg-type]

    return apply


def regroup(name: str, groups: list[str]) -> ConfigEdit:
    def apply(config: DaemonConfig) -> None:
        assert "groups" in config.principal(name), name
        config.set_principal(name, groups=groups)

    return apply


def notify_table(fx: SealFixtures, url: str, secret: Path, **extra: object) -> dict[str, object]:
    admin = fx.principals["chen.jie"]
    webhook = {
        "name": "oa",
        "url": url,
        "secret": str(secret),
        "ca": str(fx.tls_ca),
        "client_cert": str(admin.cert),
        "client_key": str(admin.key),
    }
    settings = {"initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.3, **extra}
    return {"notify": {**settings, "webhook": [webhook]}}


@pytest.fixture
def receiver(seal_fixtures: SealFixtures) -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(
        SECRET, seal_fixtures.server_cert, seal_fixtures.server_key, client_ca=seal_fixtures.tls_ca
    ).start()
    yield r
    r.stop()


SEALCTL = shutil.which("sealctl", path=str(Path(sys.executable).parent))


def sealctl(fx: SealFixtures, d: SealDaemon, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert SEALCTL is not None, "sealctl not installed in the venv"
    command = [SEALCTL, "--config", str(fx.principals[who].config), "--server", d.target, *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def submit(client: SealClient, pdf: Path, **kw: str) -> requests_pb2.SealRequest:
    return client.submit(
        [pdf], seal_id="contract", reason="采购合同", category="contract", placement=PLACEMENT, **kw
    )


def window(hours: float = 24) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(minutes=1), now + timedelta(hours=hours)


# -- delegation ------------------------------------------------------------------------------


def test_delegation_delegate_approves_for_the_gm_counts_once_and_the_evidence_names_it(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    fx = fresh_seal_fixtures
    d = SealDaemon(fx, edit(fx, principals=third_person(fx, "deputy")))
    d.start()
    try:
        pdf = make_pdf(tmp_path / "c.pdf")
        start, end = window()
        with d.client("li.na") as li, d.client("chen.jie") as admin:
            proposed = li.propose_delegation("deputy", start=start, end=end, seal_id="contract")
            assert proposed.state == "proposed"
            with pytest.raises(SealClientError) as self_approval:
                li.approve_delegation(proposed.delegation_id)  # not an admin
            assert self_approval.value.code == grpc.StatusCode.PERMISSION_DENIED
            active = admin.approve_delegation(proposed.delegation_id)
            assert active.state == "active" and active.approved_by == "chen.jie"
        with d.client("zhang.wei") as z:
            request = submit(z, pdf)
        with d.client_for(fx.unlisted) as deputy:
            after = deputy.approve(request.request_id, "代李娜审批", on_behalf_of="li.na")
        assert [(a.approver, a.acting_for) for a in after.approvals] == [("deputy", "li.na")]
        with d.client("li.na") as li:  # the delegator and the delegate together count once
            with pytest.raises(SealClientError) as twice:
                li.approve(request.request_id)
            assert twice.value.code == grpc.StatusCode.ALREADY_EXISTS
        with d.client("wang.fang") as wang:
            approved = wang.approve(request.request_id)
        assert approved.state == requests_pb2.REQUEST_STATE_APPROVED
        with d.client("liu.yang") as custodian:
            unlock_first_use(custodian, fx, "contract")
        with d.client("zhang.wei") as z:
            done = d.wait_state(z, request.request_id, requests_pb2.REQUEST_STATE_SIGNED)
            sealed = tmp_path / "c.sealed.pdf"
            z.download(request.request_id, 0, sealed)
        with d.client("zhao.min") as auditor:
            package = auditor.evidence(request.request_id)
    finally:
        d.stop()
    # Offline, the daemon stopped: the package verifies and says who approved for whom.
    trust = load_trust([fx.tls_ca, fx.seal_ca, fx.state_dir / "audit" / "audit-cert.pem"])
    verdict = verify_package(package, [sealed], trust)
    assert verdict.ok, verdict.as_dict()
    policy = next(c for c in verdict.checks if c.name == "approval_policy")
    assert f"deputy for li.na under delegation {active.delegation_id}" in policy.detail
    data = json.loads(package)
    assert {a["approver"]: a.get("acting_for", "") for a in data["approvals"]} == {
        "deputy": "li.na",
        "wang.fang": "",
    }
    assert b'"on_behalf_of":"li.na"' in data["approvals"][0]["statement"].encode()
    assert done.state == requests_pb2.REQUEST_STATE_SIGNED
    # The same package with the delegated approval moved to another delegator is caught.
    forged = json.loads(package)
    forged["approvals"][0]["acting_for"] = "wang.fang"
    bad = verify_package(json.dumps(forged).encode(), [sealed], trust)
    assert not bad.ok and "approval_statements" in bad.failed()


def test_delegation_ended_voids_the_delegates_approval_and_refusals_name_the_rule(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    fx = fresh_seal_fixtures
    d = SealDaemon(fx, edit(fx, principals=third_person(fx, "deputy")))
    d.start()
    try:
        pdf = make_pdf(tmp_path / "c.pdf")
        start, end = window()
        with d.client("zhang.wei") as z:
            request = submit(z, pdf)  # zhang.wei has an open request: no delegate to him
        with d.client("li.na") as li, d.client("chen.jie") as admin:
            for delegate, expected in (
                ("li.na", "to themselves"),
                ("zhang.wei", "requester of open request"),
            ):
                with pytest.raises(SealClientError) as refused:
                    li.propose_delegation(delegate, start=start, end=end, seal_id="contract")
                assert refused.value.code in (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.FAILED_PRECONDITION,
                )
                assert expected in refused.value.message
            with pytest.raises(SealClientError) as too_long:
                li.propose_delegation(
                    "deputy", start=start, end=start + timedelta(days=91), seal_id="contract"
                )
            assert "longer than the maximum" in too_long.value.message
            dl = admin.approve_delegation(
                li.propose_delegation("deputy", start=start, end=end, seal_id="contract").delegation_id
            )
            with pytest.raises(SealClientError) as overlap:
                li.propose_delegation("wang.fang", start=start, end=end)
            assert (
                overlap.value.code == grpc.StatusCode.FAILED_PRECONDITION
                and "overlap" in overlap.value.message
            )
        with d.client_for(fx.unlisted) as deputy:
            deputy.approve(request.request_id, on_behalf_of="li.na")
        listed = sealctl(fx, d, "li.na", "delegation", "list", "--live")
        assert f"delegation: {dl.delegation_id} (active)" in listed.stdout, listed.stdout + listed.stderr
        assert "deputy approves for li.na: contract" in listed.stdout
        ended_cli = sealctl(fx, d, "li.na", "delegation", "end", dl.delegation_id, "--comment", "back")
        assert ended_cli.returncode == 0 and "(ended)" in ended_cli.stdout, (
            ended_cli.stdout + ended_cli.stderr
        )
        with d.client("zhang.wei") as z:
            now = z.get(request.request_id)
        assert list(now.approvals) == [] and now.state == requests_pb2.REQUEST_STATE_PENDING
        assert dl.delegation_id in now.state_reason
        with d.client_for(fx.unlisted) as deputy:
            with pytest.raises(SealClientError) as gone:
                deputy.approve(request.request_id, on_behalf_of="li.na")
            assert gone.value.code == grpc.StatusCode.NOT_FOUND
    finally:
        d.stop()


# -- chains ------------------------------------------------------------------------------------

CHAIN = {
    "policy": {
        "sequence": [
            {"step": "department", "group": "department_manager"},
            {"step": "legal", "group": "legal", "when": {"amount_over": "100000", "currency": "CNY"}},
            {"step": "gm", "group": "general_manager"},
        ]
    }
}


def chain_daemon(fx: SealFixtures) -> SealDaemon:
    base = edit(fx, seal=CHAIN, principals=third_person(fx, "legal.counsel", ["legal"]))
    return SealDaemon(fx, chain(base, regroup("wang.fang", ["department_manager"])))


def test_chain_three_steps_out_of_order_refused_then_completes_in_order(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    fx = fresh_seal_fixtures
    d = chain_daemon(fx)
    d.start()
    try:
        pdf = make_pdf(tmp_path / "c.pdf")
        with d.client("zhang.wei") as z:
            big = submit(z, pdf, amount="250000.00", amount_currency="CNY")
            small = submit(z, pdf, amount="5000", amount_currency="CNY")
        assert big.amount == "250000" and big.chain.current == "department"
        assert [s.state for s in big.chain.steps] == ["current", "waiting", "waiting"]
        assert list(big.chain.steps[0].needed_from) == ["wang.fang"]
        assert [s.state for s in small.chain.steps] == ["current", "skipped", "waiting"]
        with d.client("li.na") as gm:
            with pytest.raises(SealClientError) as early:
                gm.approve(big.request_id)
            assert early.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert "out of order" in early.value.message and "department" in early.value.message
        with d.client("wang.fang") as dept:
            step1 = dept.approve(big.request_id)
            dept.approve(small.request_id)
        assert step1.chain.current == "legal"
        with d.client("li.na") as gm:
            with pytest.raises(SealClientError) as still_early:
                gm.approve(big.request_id)
            assert "step 'legal'" in still_early.value.message
            done_small = gm.approve(small.request_id)  # no legal step under 100000 CNY
        assert done_small.state == requests_pb2.REQUEST_STATE_APPROVED and done_small.chain.complete
        with d.client_for(fx.unlisted) as legal:
            legal.approve(big.request_id)
        with d.client("li.na") as gm:
            done = gm.approve(big.request_id)
        assert done.state == requests_pb2.REQUEST_STATE_APPROVED and done.chain.complete
        assert [list(s.counted) for s in done.chain.steps] == [["wang.fang"], ["legal.counsel"], ["li.na"]]
        with d.client("liu.yang") as custodian:
            unlock_first_use(custodian, fx, "contract")
        with d.client("zhang.wei") as z:
            d.wait_state(z, big.request_id, requests_pb2.REQUEST_STATE_SIGNED)
            sealed = tmp_path / "big.sealed.pdf"
            z.download(big.request_id, 0, sealed)
        with d.client("zhao.min") as auditor:
            package = auditor.evidence(big.request_id)
    finally:
        d.stop()
    # Offline: the recorded chain is evaluated again from the signed approvals, in ledger order.
    trust = load_trust([fx.tls_ca, fx.seal_ca, fx.state_dir / "audit" / "audit-cert.pem"])
    verdict = verify_package(package, [sealed], trust)
    assert verdict.ok, verdict.as_dict()
    policy = next(c for c in verdict.checks if c.name == "approval_policy")
    assert "chain department:done -> legal:done -> gm:done" in policy.detail
    without_legal = json.loads(package)
    without_legal["approvals"] = [a for a in without_legal["approvals"] if a["approver"] != "legal.counsel"]
    bad = verify_package(json.dumps(without_legal).encode(), [sealed], trust)
    detail = next(c.detail for c in bad.checks if c.name == "approval_policy")
    assert "the approval chain is not complete: step 'legal'" in detail


def test_chain_unsatisfiable_policy_refuses_to_start_naming_the_seal(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    fx = fresh_seal_fixtures
    policy = {"sequence": [{"step": "a", "group": "nobody"}, {"step": "b", "group": "general_manager"}]}
    d = SealDaemon(fx, edit(fx, seal={"policy": policy}))
    with pytest.raises(RuntimeError) as refused:
        d.start(timeout=30)
    assert "seal[contract].policy: group 'nobody' has no approver" in str(refused.value)


# -- webhooks ----------------------------------------------------------------------------------


def _types(receiver: WebhookReceiver, request_id: str) -> list[str]:
    return [r.event["type"] for r in receiver.accepted if r.event.get("request_id") == request_id]


def test_webhook_receiver_down_then_up_every_event_once_in_order_per_request(
    fresh_seal_fixtures: SealFixtures, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fx = fresh_seal_fixtures
    secret = tmp_path / "webhook.secret"
    secret.write_bytes(SECRET)
    receiver.fail_next = 6  # down for the first attempts
    d = SealDaemon(fx, edit(fx, tail=notify_table(fx, receiver.url, secret)))
    d.start()
    try:
        pdf = make_pdf(tmp_path / "c.pdf")
        with d.client("zhang.wei") as z:
            requests = [submit(z, pdf) for _ in range(3)]
            z.cancel(requests[2].request_id, "不需要了")
        with d.client("li.na") as li, d.client("wang.fang") as wang:
            for r in requests[:2]:
                li.approve(r.request_id)
                wang.approve(r.request_id)
        with d.client("liu.yang") as custodian:
            unlock_first_use(custodian, fx, "contract")
        with d.client("zhang.wei") as z:
            for r in requests[:2]:
                d.wait_state(z, r.request_id, requests_pb2.REQUEST_STATE_SIGNED)
        expected = 2 * 3 + 2  # per sealed request: approval_needed, approved, sealed; cancelled: 2
        receiver.wait_for(expected, timeout=60)
        time.sleep(1.0)  # a duplicate would arrive now
        with d.client("chen.jie") as admin:
            queue = admin.notification_queue()
        assert queue.pending == 0 and queue.dead == 0
    finally:
        d.stop()
    ids = receiver.unique_ids()
    assert len(ids) == len(set(ids)) == expected, ids
    for r in requests[:2]:
        assert _types(receiver, r.request_id) == ["approval_needed", "approved", "sealed"]
    assert _types(receiver, requests[2].request_id) == ["approval_needed", "withdrawn"]
    first = next(x for x in receiver.accepted if x.event["type"] == "approval_needed")
    assert first.event["approvers"] == ["li.na", "wang.fang"]
    assert set(first.event) <= {
        "event_id",
        "type",
        "occurred_at",
        "seal_id",
        "request_id",
        "state",
        "approvers",
        "step",
    }
    assert receiver.attempts >= expected + 6 and not receiver.rejected


def test_webhook_sigkill_with_100_undelivered_events_all_delivered_after_restart(
    fresh_seal_fixtures: SealFixtures, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fx = fresh_seal_fixtures
    secret = tmp_path / "webhook.secret"
    secret.write_bytes(SECRET)
    receiver.fail_next = 10**6  # down while the events are made
    d = SealDaemon(fx, edit(fx, tail=notify_table(fx, receiver.url, secret, max_backoff_seconds=1)))
    d.start()
    try:
        pdf = make_pdf(tmp_path / "c.pdf")
        with d.client("zhang.wei") as z:
            made = [submit(z, pdf) for _ in range(50)]
            for r in made:
                z.cancel(r.request_id)  # 50 x (approval_needed, withdrawn) = 100 events
        with d.client("chen.jie") as admin:
            assert admin.notification_queue().pending == 100
        d.kill()  # SIGKILL: nothing is flushed, nothing is said
        receiver.fail_next = 0  # the receiver is back
        d.start()
        receiver.wait_for(100, timeout=120)
        time.sleep(1.0)
        with d.client("chen.jie") as admin:
            queue = admin.notification_queue()
        assert (queue.pending, queue.delivered) == (0, 100)
    finally:
        d.stop()
    assert len(receiver.unique_ids()) == 100
    for r in made:
        assert _types(receiver, r.request_id) == ["approval_needed", "withdrawn"]


def test_webhook_dead_letter_then_sealctl_replay(
    fresh_seal_fixtures: SealFixtures, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    fx = fresh_seal_fixtures
    secret = tmp_path / "webhook.secret"
    secret.write_bytes(SECRET)
    receiver.fail_next = 10**6
    table = notify_table(fx, receiver.url, secret, dead_letter_hours=1.0 / 3600)  # one second
    d = SealDaemon(fx, edit(fx, tail=table))
    d.start()
    try:
        with d.client("zhang.wei") as z:
            request = submit(z, make_pdf(tmp_path / "c.pdf"))
        with d.client("chen.jie") as admin:
            deadline = time.monotonic() + 30
            while admin.notification_queue().dead < 1:
                assert time.monotonic() < deadline, "no dead letter"
                time.sleep(0.2)
            dead = admin.notification_queue("dead")
            assert dead.deliveries[0].state == "dead" and "503" in dead.deliveries[0].last_error
        receiver.fail_next = 0
        listed = sealctl(fx, d, "chen.jie", "notify", "list", "--state", "dead")
        assert listed.returncode == 0 and "dead 1" in listed.stdout, listed.stdout + listed.stderr
        replayed = sealctl(fx, d, "chen.jie", "notify", "replay")
        assert replayed.returncode == 0 and "1 dead letter(s) queued again" in replayed.stdout
        [event_id] = receiver.wait_for(1, timeout=30)
        assert receiver.accepted[0].event["request_id"] == request.request_id
        with d.client("wang.fang") as approver:
            with pytest.raises(SealClientError) as denied:
                approver.replay_notifications()
            assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    finally:
        d.stop()
    assert event_id


def test_webhook_non_https_url_refused_at_config_load(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    fx = fresh_seal_fixtures
    secret = tmp_path / "webhook.secret"
    secret.write_bytes(SECRET)
    d = SealDaemon(fx, edit(fx, tail=notify_table(fx, "http://oa.example.com/hook", secret)))
    with pytest.raises(RuntimeError) as refused:
        d.start(timeout=30)
    assert "notify.webhook[oa].url" in str(refused.value) and "is not https" in str(refused.value)


# -- quotas ------------------------------------------------------------------------------------


def test_quota_n_plus_first_use_in_a_day_refused_with_reset_and_a_restart_keeps_the_count(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    fx = fresh_seal_fixtures
    d = SealDaemon(fx, edit(fx, seal={"quota": {"uses_per_day": 2, "documents_per_request": 1}}))
    d.start()
    try:
        pdf = make_pdf(tmp_path / "c.pdf")
        with d.client("zhang.wei") as z:
            with pytest.raises(SealClientError) as docs:
                z.submit([pdf, pdf], seal_id="contract", reason="r", category="contract", placement=PLACEMENT)
            assert (
                docs.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                and "documents_per_request" in docs.value.message
            )
            submit(z, pdf)
            submit(z, pdf)
            with pytest.raises(SealClientError) as third:
                submit(z, pdf)
        assert third.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "uses_per_day" in third.value.message and "resets at" in third.value.message
        assert re.search(r"resets at \d{4}-\d\d-\d\dT00:00:00\+08:00", third.value.message)
        d.stop()
        d.start()  # the count comes from the stored requests, not from memory
        with d.client("zhang.wei") as z, pytest.raises(SealClientError) as after_restart:
            submit(z, pdf)
        assert after_restart.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        # The usage report shows the quotas and the busiest local day of the period.
        now = datetime.now(UTC)
        with d.client("zhao.min") as auditor:
            report = json.loads(auditor.usage_report(now - timedelta(days=2), now + timedelta(minutes=1)))
        [contract] = report["quotas"]
        assert (contract["seal_id"], contract["uses_per_day"], contract["documents_per_request"]) == (
            "contract",
            2,
            1,
        )
        assert contract["busiest_day_uses"] == 2 and contract["busiest_month_uses"] == 2
    finally:
        if d.proc is not None:
            d.stop()
