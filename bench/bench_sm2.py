"""SM2 vs RSA-2048 vs ECDSA P-256: signature latency and throughput on the same machine (issue 19).

    .venv/bin/python bench/bench_sm2.py [--n 300]

What is measured, per algorithm, as the raw key operation a seal signature needs
(the PDF / CMS / SES_Signature assembly around it is the same work for every algorithm
and is measured by bench_seal.py):

- ``sm2-skf``: SM2 on the SKF TEST token (softhsm-fixtures/skf-test-token) through
  seald's ctypes binding: e = SM3(Z||M) in Python, SKF_ECCSignData in C (which, being a
  test token, also reads the PEM key file for every signature);
- ``sm2-soft``: SM2 in process with tongsuopy (the verifier side's library), for scale;
- ``rsa-2048-softhsm``: C_Sign CKM_SHA256_RSA_PKCS on SoftHSM;
- ``ecdsa-p256-softhsm``: SHA-256 in Python + C_Sign raw CKM_ECDSA on SoftHSM;
- ``sm2-verify``: one SM2 verification (tongsuopy), what VerifyDocument pays per layer.

Sequential calls from one thread (a token is a serial device). Reported: median and p95
latency in ms, and operations per second over the run, with the 1-minute load average.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "softhsm-fixtures")]

import pkcs11  # noqa: E402
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass  # noqa: E402
from skf_fixture import ADMIN_PIN, INITIAL_USER_PIN, SkfTestToken  # noqa: E402

from seald.gm import sm2  # noqa: E402
from seald.tokens import seal_keys, skf  # noqa: E402

MESSAGE = hashlib.sha256(b"a PDF byte range").digest() * 4  # ~ what a seal signs (attributes/TBS)


def measure(fn: Callable[[], object], n: int) -> tuple[float, float, float]:
    for _ in range(min(10, n)):
        fn()  # warm up
    times = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - start
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], n / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="signatures per algorithm")
    args = ap.parse_args()
    results: list[tuple[str, tuple[float, float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-sm2-") as tmp:
        work = Path(tmp)
        # SKF test token: application, container, SM2 key generated inside
        token = SkfTestToken(work / "skf")
        token.create_device("BENCH-01", serial="B0001")
        lib = skf.SkfLibrary(str(token.library))
        app = lib.connect("BENCH-01").create_application(
            "SEAL", admin_pin=ADMIN_PIN, user_pin=INITIAL_USER_PIN
        )
        app.verify_pin(INITIAL_USER_PIN)
        con = app.create_container("c")
        point = con.generate_sm2()
        results.append(("sm2-skf", measure(lambda: con.sign(MESSAGE), args.n)))
        soft = sm2.Sm2PrivateKey.generate()
        results.append(("sm2-soft", measure(lambda: soft.sign(MESSAGE), args.n)))
        sig = con.sign(MESSAGE)
        pub = sm2.Sm2PublicKey(point)
        results.append(("sm2-verify", measure(lambda: pub.verify(sig, MESSAGE), args.n)))

        # SoftHSM: one fresh token with an RSA-2048 and an ECDSA P-256 key
        conf = work / "softhsm2.conf"
        (work / "tokens").mkdir()
        conf.write_text(
            f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
        )
        os.environ["SOFTHSM2_CONF"] = str(conf)
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                "bench",
                "--so-pin",
                "12345678",
                "--pin",
                "11223344",
            ],
            check=True,
            capture_output=True,
        )
        p11 = pkcs11.lib("/usr/lib/softhsm/libsofthsm2.so")
        p11.reinitialize()
        with p11.get_token(token_label="bench").open(user_pin="11223344", rw=True) as session:
            seal_keys._generate(session, "rsa", "rsa")
            seal_keys._generate(session, "ec", "ecdsa-p256")

            def key(label: str) -> pkcs11.PrivateKey:
                (k,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label})
                assert k[Attribute.KEY_TYPE] in (KeyType.RSA, KeyType.EC)
                return k

            rsa_key, ec_key = key("rsa"), key("ec")
            results.append(
                (
                    "rsa-2048-softhsm",
                    measure(lambda: rsa_key.sign(MESSAGE, mechanism=Mechanism.SHA256_RSA_PKCS), args.n),
                )
            )
            results.append(
                (
                    "ecdsa-p256-softhsm",
                    measure(
                        lambda: ec_key.sign(hashlib.sha256(MESSAGE).digest(), mechanism=Mechanism.ECDSA),
                        args.n,
                    ),
                )
            )
    print(
        f"bench_sm2: {args.n} signatures each, load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores"
    )
    print(f"{'algorithm':<22}{'median ms':>11}{'p95 ms':>9}{'ops/s':>9}")
    for name, (med, p95, rate) in results:
        print(f"{name:<22}{med:>11.3f}{p95:>9.3f}{rate:>9.0f}")


if __name__ == "__main__":
    main()
