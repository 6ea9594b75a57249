"""Issue 17 against the real store (SQLite on disk) with the fixture configuration:
quotas counted from stored requests (a reopened store keeps the count), delegation
ending voids its approvals in the same transaction, and request changes write their
outbox events in their own transaction."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from seald.config import Config, load_config
from seald.domain import lifecycle
from seald.domain.errors import PreconditionFailed
from seald.domain.model import Document, Placement, RequestState, SealRequest
from seald.domain.quotas import QuotaExceeded
from seald.store.database import Store, Transaction
from seald.store.ledger import Ledger
from seald.workflow import Workflow, request_notifier

DEPUTY = """
[[principal]]
name = "deputy"
display_name = "代理人"
roles = ["approver"]
seals = ["contract"]
certificates = ["{fp}"]
""".format(fp="d4" * 32)
SECRET_FILE = "webhook.secret"


def config_with(tmp_path: Path, fx: SealFixtures, seal_extra: str = "", tail: str = "") -> Config:
    text = fx.config.read_text(encoding="utf-8")
    head, sep, rest = text.partition("\n[[principal]]")
    (tmp_path / SECRET_FILE).write_text("0123456789abcdef0123456789abcdef")
    path = tmp_path / "seald.toml"
    path.write_text(head + "\n" + seal_extra + "\n" + DEPUTY + sep + rest + "\n" + tail, encoding="utf-8")
    return load_config(path)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def new_request(config: Config, rid: str, now: datetime, amount: str | None = None) -> SealRequest:
    requester = config.principals["zhang.wei"].principal
    return lifecycle.submit(
        request_id=rid,
        requester=requester,
        seal=config.seal("contract", "c" * 64),
        reason="采购合同",
        category="contract",
        placement=Placement(1, 100, 100, 40),
        documents=[Document(0, "c.pdf", 10, hashlib.sha256(rid.encode()).hexdigest())],
        now=now,
        ttl=timedelta(hours=72),
        host="h",
    )


async def open_store(path: Path, clock: Clock) -> Store:
    store = Store(path, Ledger("seal-host-01", clock))
    await store.open()
    return store


# Noon in Shanghai (the fixture seals' time zone): the day resets at 2026-11-30T00:00+08:00.
NOON = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)


def test_quota_nth_allowed_n_plus_first_refused_and_a_restart_keeps_the_count(
    seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    config = config_with(tmp_path, seal_fixtures, "[seal.quota]\nuses_per_day = 2\nuses_per_month = 2\n")
    clock = Clock(NOON)

    async def submit(store: Store, rid: str) -> None:
        workflow = Workflow(store, lambda: config, clock)

        def _tx(tx: Transaction) -> None:
            workflow.check_quota_tx(tx, "contract", 1, clock.now)
            tx.save_request(new_request(config, rid, clock.now))

        await store.write(_tx)

    async def scenario() -> None:
        store = await open_store(tmp_path / "state", clock)
        await submit(store, "r1")
        await submit(store, "r2")
        with pytest.raises(QuotaExceeded) as refused:
            await submit(store, "r3")
        assert refused.value.reason == "quota_uses_per_day"
        assert "resets at 2026-11-30T00:00:00+08:00" in refused.value.message
        await store.close()
        store = await open_store(tmp_path / "state", clock)  # "restart"
        with pytest.raises(QuotaExceeded, match="uses_per_day"):
            await submit(store, "r3")
        # A cancelled request gives its use back.
        requester = config.principals["zhang.wei"].principal

        def cancel(tx: Transaction) -> None:
            tx.save_request(lifecycle.cancel(tx.get_request("r1"), principal=requester, now=clock.now))

        await store.write(cancel)
        await submit(store, "r3")
        clock.now = NOON + timedelta(days=1)  # next local day: the month quota (2) is spent
        with pytest.raises(QuotaExceeded) as month:
            await submit(store, "r4")
        assert month.value.reason == "quota_uses_per_month"
        assert "2026-12-01T00:00:00+08:00" in month.value.message
        await store.close()

    asyncio.run(scenario())


def test_delegation_ending_voids_its_approvals_in_the_same_transaction(
    seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    config = config_with(tmp_path, seal_fixtures)
    clock = Clock(datetime.now(UTC))
    li, wang = config.principals["li.na"].principal, config.principals["wang.fang"].principal
    deputy, admin = config.principals["deputy"].principal, config.principals["chen.jie"].principal

    async def scenario() -> None:
        store = await open_store(tmp_path / "state", clock)
        workflow = Workflow(store, lambda: config, clock)
        d = await workflow.propose(
            li,
            delegate="deputy",
            delegator="",
            seal_id="contract",
            categories=[],
            valid_from=clock.now - timedelta(minutes=1),
            valid_until=clock.now + timedelta(days=3),
            comment="出差",
        )
        with pytest.raises(PreconditionFailed, match="overlap"):
            await workflow.propose(
                admin, delegate="wang.fang", delegator="li.na", seal_id="", categories=[],
                valid_from=clock.now, valid_until=clock.now + timedelta(days=1), comment="",
            )  # fmt: skip
        d = await workflow.approve(admin, d.delegation_id)
        request = new_request(config, "r1", clock.now)
        policy = config.policy_for("contract", clock.now)

        def approve(tx: Transaction) -> SealRequest:
            r = tx.get_request("r1") if tx.conn.execute("SELECT 1 FROM requests").fetchone() else request
            found = workflow.delegation_for_approval(tx, deputy, r, "li.na", clock.now)
            assert found is not None and found.delegation_id == d.delegation_id
            new = lifecycle.approve(
                r, approver=deputy, document_sha256=[r.documents[0].sha256],
                approval_digest=r.approval_digest, policy=policy, now=clock.now, delegation=found,
            )  # fmt: skip
            new = lifecycle.approve(
                new, approver=wang, document_sha256=[r.documents[0].sha256],
                approval_digest=r.approval_digest, policy=policy, now=clock.now,
            )  # fmt: skip
            tx.save_request(new)
            return new

        approved, _ = await store.write(approve)
        assert approved.state is RequestState.APPROVED
        assert approved.approvals[0].acting_for == "li.na"
        ended = await workflow.end(li, d.delegation_id)
        assert ended.state.value == "ended"
        after = await store.get_request("r1")
        assert after.state is RequestState.PENDING and [a.approver for a in after.approvals] == ["wang.fang"]
        await store.close()

    asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "state" / "seald.sqlite3") as conn:
        events = [r[0] for r in conn.execute("SELECT event FROM audit_log ORDER BY sequence")]
    assert events[-2:] == ["delegation.ended", "request.approval_voided"]
    assert "delegation.proposed" in events and "delegation.approved" in events


def test_webhook_request_changes_write_their_events_in_the_same_transaction(
    seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    hook = f'name = "oa"\nurl = "https://127.0.0.1:9/x"\nsecret = "{SECRET_FILE}"\n'
    tail = "[notify]\n[[notify.webhook]]\n" + hook
    config = config_with(tmp_path, seal_fixtures, tail=tail)
    clock = Clock(datetime.now(UTC))

    async def scenario() -> None:
        store = await open_store(tmp_path / "state", clock)
        store.notifier = request_notifier(lambda: config, clock)
        request = new_request(config, "r1", clock.now)
        await store.write(lambda tx: tx.save_request(request))
        requester = config.principals["zhang.wei"].principal
        cancelled = lifecycle.cancel(request, principal=requester, now=clock.now)

        def failing(tx: Transaction) -> None:
            tx.save_request(cancelled)
            raise RuntimeError("the audit record could not be written")

        with pytest.raises(RuntimeError):
            await store.write(failing)
        await store.write(lambda tx: tx.save_request(cancelled))
        await store.close()

    asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "state" / "seald.sqlite3") as conn:
        rows = conn.execute("SELECT type, request_id, body FROM outbox ORDER BY seq").fetchall()
        deliveries = conn.execute("SELECT webhook, state FROM outbox_delivery").fetchall()
    assert [(t, r) for t, r, _ in rows] == [("approval_needed", "r1"), ("withdrawn", "r1")]
    assert b'"approvers":["li.na","wang.fang"]' in rows[0][2]
    assert b"\\u" not in rows[0][2] and "采购合同".encode() not in rows[0][2]  # no reason text
    assert deliveries == [("oa", "pending"), ("oa", "pending")]
