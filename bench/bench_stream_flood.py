"""Issue 8: one client flooding watch streams vs another client's calls.

    .venv/bin/python bench/bench_stream_flood.py [--attempts 400] [--calls 200] [--cap 8]

A real seald (fresh SoftHSM token, mutual TLS, default limits: 8 streams per principal).
li.na holds 8 WatchTokens streams and then tries `--attempts` more from 16 threads at
once; meanwhile wang.fang makes `--calls` ListSeals calls one after the other. Prints
wang.fang's p50/p99 latency in that flood against the same calls on the idle daemon
(run side by side in this process), how many of li.na's streams opened and were
refused (and with which reason), the `seald_open_streams` gauge, and seald's RSS.
`--attempts` stays under the default rate-limit burst (500) so the stream cap, not the
rate limit, is what refuses them. `--cap 1000` sets max_streams_per_principal that high,
to see what the flood costs when nothing refuses it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "softhsm-fixtures"), str(ROOT / "tests"), str(ROOT / "tests" / "assets")]
from build_fixtures import build_fixtures  # noqa: E402
from fixture_layout import load_fixtures  # noqa: E402

from sealapi.v1 import seals_pb2, seals_pb2_grpc, tokens_pb2, tokens_pb2_grpc  # noqa: E402
from seald_testing.config import DaemonConfig  # noqa: E402
from seald_testing.daemon import SealDaemon, free_port  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def channel(d: SealDaemon, name: str) -> grpc.Channel:
    who = d.fixtures.principals[name]
    creds = grpc.ssl_channel_credentials(
        d.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
    )
    return grpc.secure_channel(d.target, creds)


def list_latencies(stub: seals_pb2_grpc.SealRegistryServiceStub, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        stub.ListSeals(seals_pb2.ListSealsRequest(), timeout=30)
        times.append(time.perf_counter() - started)
    return times


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_streams(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("seald_open_streams "):
                return float(line.split()[1])
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=400)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--cap", type=int, default=8, help="max_streams_per_principal")
    args = parser.parse_args()
    if not 0 < args.attempts < 500 or args.calls < 10 or args.cap < 1:
        parser.error("--attempts must be 1..499 (under the rate-limit burst), --calls >= 10, --cap >= 1")
    out = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    build_fixtures(out / "fx")
    metrics_port = free_port()

    def edit(config: DaemonConfig) -> None:
        config.set("requests", max_streams_per_principal=args.cap, max_open_streams=max(1024, args.cap))
        config.metrics(metrics_port)

    d = SealDaemon(load_fixtures(out / "fx"), edit)
    d.start()
    assert d.proc is not None
    li, wang = channel(d, "li.na"), channel(d, "wang.fang")
    try:
        wang_seals = seals_pb2_grpc.SealRegistryServiceStub(wang)
        li_tokens = tokens_pb2_grpc.TokenServiceStub(li)
        list_latencies(wang_seals, 10)  # warm up the channel
        idle = list_latencies(wang_seals, args.calls)
        rss_before = rss_mib(d.proc.pid)

        held: list[Any] = []
        reasons: dict[str, int] = {}
        lock = threading.Lock()

        def attempt(_: int) -> None:
            call = li_tokens.WatchTokens(tokens_pb2.WatchTokensRequest(), timeout=120)
            try:
                next(call)
            except grpc.RpcError as ex:
                trailers = dict(ex.trailing_metadata() or ())  # type: ignore[attr-defined]
                reason = str(trailers.get("seal-error-reason", ex.code()))  # type: ignore[attr-defined]
                with lock:
                    reasons[reason] = reasons.get(reason, 0) + 1
                return
            with lock:
                held.append(call)

        flood_started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            flood = pool.map(attempt, range(8 + args.attempts))
            during = list_latencies(wang_seals, args.calls)
            list(flood)
        flood_s = time.perf_counter() - flood_started
        gauge = open_streams(metrics_port)
        rss_after = rss_mib(d.proc.pid)
        for call in held:
            call.cancel()
    finally:
        li.close()
        wang.close()
        d.stop()

    base50, base99 = statistics.median(idle), pct(idle, 99)
    load50, load99 = statistics.median(during), pct(during, 99)
    print(f"li.na: {8 + args.attempts} WatchTokens attempts from 16 threads in {flood_s:.2f} s")
    refused = dict(sorted(reasons.items()))
    print(f"  opened {len(held)} (max_streams_per_principal = {args.cap}); refused {refused}")
    print(f"  seald_open_streams during the flood: {gauge:g}")
    print(f"wang.fang ListSeals x {args.calls}, one after the other")
    print(f"  idle daemon   : p50 {base50 * 1000:7.2f} ms  p99 {base99 * 1000:7.2f} ms")
    print(f"  during flood  : p50 {load50 * 1000:7.2f} ms  p99 {load99 * 1000:7.2f} ms")
    print(f"  ratio         : p50 {load50 / base50:6.2f}x     p99 {load99 / base99:6.2f}x")
    print(f"seald RSS: {rss_before:.1f} MiB before the flood, {rss_after:.1f} MiB during it")


if __name__ == "__main__":
    main()
