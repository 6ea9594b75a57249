"""Prometheus metrics after a known run: a real seald process, scraped over HTTP."""

from __future__ import annotations

import math
import sqlite3
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from fixture_layout import SealFixtures

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import SealClientError
from seald.config import load_config
from seald.domain.errors import ConfigError
from seald_testing.daemon import SealDaemon, free_port, make_pdf, scrape, unlock_first_use
from seald_testing.plugin import DaemonFactory

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
SIGNED = requests_pb2.REQUEST_STATE_SIGNED


def unlock(d: SealDaemon, seal_id: str) -> None:
    with d.client("liu.yang") as custodian:
        unlock_first_use(custodian, d.fixtures, seal_id)  # R07 first use


def test_r10_metrics_after_a_known_run(daemon_factory: DaemonFactory, tmp_path: Path) -> None:
    port = free_port()
    d = daemon_factory(lambda c: c.metrics(port))
    with d.client("zhang.wei") as requester:
        signed = requester.submit(
            [make_pdf(tmp_path / "a.pdf")],
            seal_id="contract",
            reason="采购合同",
            category="contract",
            placement=PLACEMENT,
        )
        pending = requester.submit(
            [make_pdf(tmp_path / "b.pdf"), make_pdf(tmp_path / "c.pdf")],
            seal_id="contract",
            reason="框架协议",
            category="contract",
            placement=PLACEMENT,
        )
    refusals: list[str] = []
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(signed.request_id)
        wang.approve(signed.request_id)
        li.approve(pending.request_id)
        with pytest.raises(SealClientError) as again:
            li.approve(pending.request_id)  # the same approver twice
        refusals.append(again.value.reason)
        with pytest.raises(SealClientError) as missing:
            li.get("0" * 32)
        refusals.append(missing.value.reason)
    with d.client("zhang.wei") as requester, pytest.raises(SealClientError) as denied:
        requester.approve(pending.request_id)
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
    refusals.append(denied.value.reason)
    unlock(d, "contract")
    with d.client("zhang.wei") as requester:
        d.wait_state(requester, signed.request_id, SIGNED)

    m = scrape(port)
    assert m[("seald_requests", (("state", "signed"),))] == 1
    assert m[("seald_requests", (("state", "pending"),))] == 1
    for state in ("approved", "signing", "rejected", "cancelled", "expired", "failed"):
        assert m[("seald_requests", (("state", state),))] == 0
    assert m[("seald_pending_approvals", (("seal", "contract"),))] == 1
    assert m[("seald_pending_approvals", (("seal", "official"),))] == 0
    assert m[("seald_seals_applied_total", (("seal", "contract"),))] == 1
    assert m[("seald_seals_applied_total", (("seal", "official"),))] == 0
    assert m[("seald_signing_seconds_count", (("seal", "contract"),))] == 1
    assert 0 < m[("seald_signing_seconds_sum", (("seal", "contract"),))] < 60
    assert m[("seald_token_present", (("seal", "contract"),))] == 1
    assert m[("seald_token_unlocked", (("seal", "contract"),))] == 1
    assert m[("seald_token_unlocked", (("seal", "official"),))] == 0
    for reason in set(refusals):
        assert m[("seald_refusals_total", (("reason", reason),))] == refusals.count(reason)
    refused_total = sum(v for (n, _), v in m.items() if n == "seald_refusals_total")
    assert refused_total == len(refusals)

    # The chain length and checkpoint age match the real store file.
    conn = sqlite3.connect(f"file:{d.fixtures.state_dir / 'seald.sqlite3'}?mode=ro", uri=True)
    try:
        head = conn.execute("SELECT MAX(sequence) FROM audit_log").fetchone()[0]
        has_cp = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_checkpoint'").fetchone()
        newest = (
            conn.execute("SELECT MAX(created_at) FROM audit_checkpoint").fetchone()[0] if has_cp else None
        )
    finally:
        conn.close()
    assert m[("seald_audit_chain_length", ())] == head
    age = m[("seald_audit_last_checkpoint_age_seconds", ())]
    if newest is None:
        assert math.isnan(age)
    else:
        assert 0 <= age < 600

    # A change shows at the next scrape, without waiting for any refresh period.
    with d.client("zhang.wei") as requester:
        requester.cancel(pending.request_id, "不再需要")
    after = scrape(port)
    assert after[("seald_requests", (("state", "pending"),))] == 0
    assert after[("seald_requests", (("state", "cancelled"),))] == 1
    assert after[("seald_audit_chain_length", ())] > head
    d.stop()
    time.sleep(0.1)
    with pytest.raises(OSError):  # the endpoint is gone with the daemon
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_metrics_off_by_default_and_listen_is_strict(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    base = seal_fixtures.config.read_text(encoding="utf-8")
    assert load_config(seal_fixtures.config).metrics.listen is None

    def config_with(extra: str) -> Path:
        path = seal_fixtures.root / f"metrics-{abs(hash(extra))}.toml"
        path.write_text(base + extra, encoding="utf-8")
        return path

    good = load_config(config_with('\n[metrics]\nlisten = "127.0.0.1:9464"\n'))
    assert good.metrics.listen == "127.0.0.1:9464"
    with pytest.raises(ConfigError, match="loopback"):
        load_config(config_with('\n[metrics]\nlisten = "0.0.0.0:9464"\n'))
    with pytest.raises(ConfigError, match=r"unknown key 'metrics\.port'"):
        load_config(config_with('\n[metrics]\nlisten = "127.0.0.1:9464"\nport = 1\n'))
