"""Per-client limits (issue 8): the token bucket, the open-request cap, the open-stream caps,
their config keys."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest
from fixture_layout import SealFixtures
from hypothesis import given, settings
from hypothesis import strategies as st

from seald.api.errors import STATUS_FOR_ERROR, status_for
from seald.config import load_config
from seald.domain.errors import ConfigError, LimitExceeded, RateLimited, TooManyStreams
from seald.domain.limits import (
    OpenStreams,
    PrincipalRateLimits,
    StreamSlot,
    TokenBucket,
    check_open_requests,
)


def test_a_bucket_admits_its_burst_then_refuses_with_the_wait() -> None:
    limits = PrincipalRateLimits()
    for _ in range(3):
        limits.admit("li.na", rate=2.0, burst=3, now=100.0)
    with pytest.raises(RateLimited) as over:
        limits.admit("li.na", rate=2.0, burst=3, now=100.0)
    assert over.value.reason == "rate_limited"
    assert "requests.rate_limit_per_second" in over.value.message
    assert "retry in 0.500 s" in over.value.message
    limits.admit("li.na", rate=2.0, burst=3, now=100.5)  # refilled one token


def test_buckets_are_per_principal() -> None:
    limits = PrincipalRateLimits()
    limits.admit("li.na", rate=1.0, burst=1, now=0.0)
    with pytest.raises(RateLimited):
        limits.admit("li.na", rate=1.0, burst=1, now=0.1)
    limits.admit("wang.fang", rate=1.0, burst=1, now=0.1)  # not held back by li.na


def test_a_lower_burst_after_reload_takes_effect_at_once() -> None:
    limits = PrincipalRateLimits()
    limits.admit("li.na", rate=1.0, burst=100, now=0.0)
    limits.admit("li.na", rate=1.0, burst=1, now=0.0)
    with pytest.raises(RateLimited):
        limits.admit("li.na", rate=1.0, burst=1, now=0.0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.1, max_value=1000.0),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=200),
)
def test_admitted_calls_never_exceed_burst_plus_rate_times_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate, burst, float(burst), 0.0)
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        if bucket.take(now) == 0.0:
            admitted += 1
        assert admitted <= burst + rate * now + 1e-6
        assert 0.0 <= bucket.tokens <= burst


def test_open_requests_cap_names_the_limit() -> None:
    check_open_requests("zhang.wei", 4, 5)
    with pytest.raises(LimitExceeded) as over:
        check_open_requests("zhang.wei", 5, 5)
    assert over.value.reason == "too_many_pending"
    assert "requests.max_pending_per_principal" in over.value.message


def test_streams_per_principal_are_capped_and_name_the_limit() -> None:
    streams = OpenStreams()
    slots = [streams.open("li.na", per_principal=3, total=100) for _ in range(3)]
    with pytest.raises(TooManyStreams) as over:
        streams.open("li.na", per_principal=3, total=100)
    assert over.value.reason == "too_many_streams"
    assert "requests.max_streams_per_principal" in over.value.message
    assert "3 streams open" in over.value.message
    assert "Close other watches" in over.value.message
    # Another principal is not held back by li.na's streams.
    streams.open("wang.fang", per_principal=3, total=100)
    slots[0].release()
    assert streams.open_for("li.na") == 2
    streams.open("li.na", per_principal=3, total=100)  # the freed slot is usable again


def test_a_slot_is_released_once_however_often_release_is_called() -> None:
    streams = OpenStreams()
    first = streams.open("li.na", per_principal=2, total=10)
    streams.open("li.na", per_principal=2, total=10)
    for _ in range(3):  # generator end, done callback, ...: only the first counts
        first.release()
    assert (streams.open_for("li.na"), streams.total) == (1, 1)
    streams.open("li.na", per_principal=2, total=10)
    with pytest.raises(TooManyStreams):
        streams.open("li.na", per_principal=2, total=10)


def test_the_server_wide_stream_cap_names_its_own_limit() -> None:
    streams = OpenStreams()
    streams.open("li.na", per_principal=2, total=3)
    streams.open("li.na", per_principal=2, total=3)
    streams.open("wang.fang", per_principal=2, total=3)
    with pytest.raises(TooManyStreams) as full:
        streams.open("zhang.wei", per_principal=2, total=3)
    assert full.value.reason == "server_streams_full"
    assert "requests.max_open_streams" in full.value.message
    assert status_for(full.value) is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_lower_stream_cap_after_reload_ends_nothing_but_refuses_new_streams() -> None:
    streams = OpenStreams()
    slots = [streams.open("li.na", per_principal=5, total=10) for _ in range(4)]
    with pytest.raises(TooManyStreams):
        streams.open("li.na", per_principal=2, total=10)
    assert streams.open_for("li.na") == 4
    for slot in slots[:3]:
        slot.release()
    streams.open("li.na", per_principal=2, total=10)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["li.na", "wang.fang", "zhang.wei"]), st.booleans()),
        max_size=200,
    ),
    per_principal=st.integers(min_value=1, max_value=5),
    total=st.integers(min_value=5, max_value=12),
)
def test_open_streams_never_exceed_either_cap_and_counts_match_the_slots(
    steps: list[tuple[str, bool]], per_principal: int, total: int
) -> None:
    streams = OpenStreams()
    held: dict[str, list[StreamSlot]] = {"li.na": [], "wang.fang": [], "zhang.wei": []}
    for who, opening in steps:
        if opening:
            try:
                held[who].append(streams.open(who, per_principal=per_principal, total=total))
            except TooManyStreams:
                assert len(held[who]) == per_principal or streams.total == total
        elif held[who]:
            held[who].pop().release()
        assert streams.total == sum(len(v) for v in held.values()) <= total
        assert all(streams.open_for(p) == len(v) <= per_principal for p, v in held.items())


def test_limit_errors_map_to_resource_exhausted_in_the_one_table() -> None:
    assert STATUS_FOR_ERROR[RateLimited] is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_for(RateLimited("x")) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_for(LimitExceeded("x", reason="too_many_pending")) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert STATUS_FOR_ERROR[TooManyStreams] is grpc.StatusCode.RESOURCE_EXHAUSTED


def _write(tmp_path: Path, fx: SealFixtures, extra: str) -> Path:
    text = fx.config.read_text(encoding="utf-8")
    assert "approval_ttl_hours = 72\n" in text
    path = tmp_path / "seald.toml"
    path.write_text(text.replace("approval_ttl_hours = 72\n", f"approval_ttl_hours = 72\n{extra}\n", 1))
    return path


def test_limit_keys_load_with_their_values(seal_fixtures: SealFixtures, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        seal_fixtures,
        "max_pending_per_principal = 7\nrate_limit_per_second = 2.5\nrate_limit_burst = 9",
    )
    r = load_config(path).requests
    assert (r.max_pending_per_principal, r.rate_limit_per_second, r.rate_limit_burst) == (7, 2.5, 9)
    d = load_config(seal_fixtures.config).requests
    assert (d.max_pending_per_principal, d.rate_limit_per_second, d.rate_limit_burst) == (1000, 100.0, 500)


def test_stream_cap_keys_load_with_their_values_and_defaults(
    seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    path = _write(tmp_path, seal_fixtures, "max_streams_per_principal = 3\nmax_open_streams = 3")
    r = load_config(path).requests
    assert (r.max_streams_per_principal, r.max_open_streams) == (3, 3)
    d = load_config(seal_fixtures.config).requests
    assert (d.max_streams_per_principal, d.max_open_streams) == (8, 1024)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("max_pending_per_principal = 0", r"requests\.max_pending_per_principal' must be at least 1"),
        ("max_pending_per_principal = \"10\"", r"requests\.max_pending_per_principal' = '10' is not valid"),
        ("rate_limit_per_second = 0", r"requests\.rate_limit_per_second' = 0; use calls per second"),
        ("rate_limit_per_second = -1.5", r"requests\.rate_limit_per_second' = -1\.5"),
        ("rate_limit_per_second = nan", r"requests\.rate_limit_per_second' = nan"),
        ("rate_limit_per_second = inf", r"requests\.rate_limit_per_second' = inf"),
        ("rate_limit_burst = 0", r"requests\.rate_limit_burst' = 0; use a count >= 1"),
        ("rate_limit_burst = 2.5", r"requests\.rate_limit_burst' = 2\.5 is not valid"),
        ("rate_limit_burst = true", r"requests\.rate_limit_burst' = True is not valid"),
        ("max_document_bytes = 0", r"requests\.max_document_bytes' must be at least 1"),
        ("max_streams_per_principal = 0", r"requests\.max_streams_per_principal' = 0; use a count >= 1"),
        ("max_streams_per_principal = -3", r"requests\.max_streams_per_principal' = -3"),
        ("max_streams_per_principal = 2.0", r"requests\.max_streams_per_principal' = 2\.0 is not valid"),
        ("max_streams_per_principal = false", r"requests\.max_streams_per_principal' = False is not valid"),
        (
            "max_open_streams = 4",
            r"requests\.max_open_streams' = 4 is below 'requests\.max_streams_per_principal' = 8",
        ),
        ("max_open_streams = \"100\"", r"requests\.max_open_streams' = '100' is not valid"),
        ("max_streams = 5", r"unknown key 'requests\.max_streams'"),
        ("rate_limit = 5", r"unknown key 'requests\.rate_limit'"),
    ],
)
def test_bad_limit_values_name_file_key_and_fix(
    seal_fixtures: SealFixtures, tmp_path: Path, extra: str, expected: str
) -> None:
    path = _write(tmp_path, seal_fixtures, extra)
    with pytest.raises(ConfigError) as bad:
        load_config(path)
    assert str(path) in str(bad.value)
    assert re.search(expected, str(bad.value)), str(bad.value)
