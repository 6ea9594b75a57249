"""Web console timings (issue 18): the request page of a 20-page document (time to the
first preview) and the click on "approve" to APPROVED, in headless Chromium.

A real seald and sealweb over TLS on loopback, Chromium with its virtual authenticator
(tests/seald_testing/web.py). Each round submits a fresh 20-page request with a
cross-page seal (骑缝章: the seal is drawn on every page; the page shows every page, lazily,
so the bench scrolls through them all) and one approval already given with sealctl's
library, so the click in the browser is the completing one.

    .venv/bin/python bench/bench_web.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [
    str(ROOT / "softhsm-fixtures"),
    str(ROOT / "tests"),
    str(ROOT / "tests" / "assets"),
]

from build_fixtures import build_fixtures  # noqa: E402
from fixture_layout import load_fixtures  # noqa: E402
from make_pdfs import valid_pdf  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from sealapi.v1 import common_pb2  # noqa: E402
from seald_testing.web import WebStack  # noqa: E402

FIRST_PREVIEW_JS = """
const img = document.querySelector('img.preview');
if (!img || !img.complete || img.naturalWidth === 0) return null;
const entry = performance.getEntriesByName(img.src)[0];
const nav = performance.getEntriesByType('navigation')[0];
return [entry ? entry.responseEnd : performance.now(), nav.domContentLoadedEventEnd,
        document.querySelectorAll('img.preview:not([hidden])').length];
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pages", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp_name:
        tmp = Path(tmp_name)
        build_fixtures(tmp / "fx")
        fixtures = load_fixtures(tmp / "fx")
        os.environ["SOFTHSM2_CONF"] = str(fixtures.softhsm2_conf)
        stack = WebStack(fixtures, tmp)
        stack.start()
        try:
            stack.enrol_in_browser("li.na")
            stack.sign_in()
            pdf = tmp / "twenty.pdf"
            pdf.write_bytes(valid_pdf(args.pages))
            first_preview, dom_ready, approve, all_pages = [], [], [], []
            shown = 0
            for _ in range(args.rounds):
                with stack.daemon.client("zhang.wei") as requester:
                    request = requester.submit(
                        [pdf],
                        seal_id="contract",
                        reason="基准测试",
                        category="contract",
                        placement=common_pb2.Placement(page=1, cross_page=True, y_mm=150, size_mm=40),
                    )
                with stack.daemon.client("wang.fang") as wang:
                    wang.approve(request.request_id)
                stack.driver.get(stack.origin + f"/r/{request.request_id}")
                timing = stack.wait(lambda d: d.execute_script(FIRST_PREVIEW_JS), 120)
                first_preview.append(timing[0])
                dom_ready.append(timing[1])
                # Lazy images load only near the screen: scroll through every page.
                for ix in range(args.pages):
                    stack.wait(
                        lambda d, i=ix: d.execute_script(
                            "const img = document.querySelectorAll('img.preview')[arguments[0]];"
                            "if (!img) return false; img.scrollIntoView();"
                            "return img.complete && img.naturalWidth > 0",
                            i,
                        ),
                        120,
                    )
                all_pages.append(stack.driver.execute_script("return performance.now()"))
                stack.driver.execute_script("window.scrollTo(0, 0)")
                shown = stack.driver.execute_script(
                    "return [...document.querySelectorAll('img.preview')]"
                    ".filter(i => i.naturalWidth > 0).length"
                )
                button = stack.driver.find_element(By.ID, "approve")
                started = time.perf_counter()
                button.click()
                stack.wait(lambda d: d.find_element(By.ID, "state").text == "已批准", 60)
                approve.append((time.perf_counter() - started) * 1000)
        finally:
            stack.stop()
    load = os.getloadavg()
    print(
        f"web console, {args.rounds} rounds, {args.pages}-page PDF, {shown} previews shown, "
        f"load average {load[0]:.2f} {load[1]:.2f}"
    )
    print(
        f"  request page DOMContentLoaded: median {statistics.median(dom_ready):.0f} ms "
        f"(min {min(dom_ready):.0f}, max {max(dom_ready):.0f})"
    )
    print(
        f"  time to first preview:         median {statistics.median(first_preview):.0f} ms "
        f"(min {min(first_preview):.0f}, max {max(first_preview):.0f})"
    )
    print(
        f"  every page loaded (scrolled):  median {statistics.median(all_pages):.0f} ms "
        f"(min {min(all_pages):.0f}, max {max(all_pages):.0f})"
    )
    print(
        f"  click on approve -> APPROVED:  median {statistics.median(approve):.0f} ms "
        f"(min {min(approve):.0f}, max {max(approve):.0f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
