"""cms_cache.KeptContentInfo: a CMS whose DER header ends in byte 0x80 (a definite length
such as 0x0680) is written as it was made, not re-encoded by asn1crypto, which takes that
byte for the indefinite-length marker (wbond/asn1crypto#249; found by bench/bench_job.py:
0.2-0.5 s per document of the fixtures' official seal in the daemon's finish step)."""

from __future__ import annotations

from typing import Any

import pytest
from asn1crypto import cms, core

from seald.signing.cms_cache import KeptContentInfo

# ContentInfo { data, [0] OCTET STRING of 1645 bytes }: 1668 bytes, header 30 82 06 80.
DER = cms.ContentInfo({"content_type": "data", "content": core.OctetString(b"x" * 1645)}).dump()


@pytest.fixture
def re_encodings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts asn1crypto's re-encodings of a whole Sequence (what the bug forces)."""
    calls: list[int] = []
    original = core.Sequence._set_contents

    def counting(self: Any, force: bool = False) -> None:
        calls.append(1)
        original(self, force)

    monkeypatch.setattr(core.Sequence, "_set_contents", counting)
    return calls


def test_kept_der_is_dumped_as_made_without_re_encoding(re_encodings: list[int]) -> None:
    assert DER[:4] == bytes.fromhex("30820680")
    assert cms.ContentInfo.load(DER).dump() == DER
    assert re_encodings, "asn1crypto no longer re-encodes here: KeptContentInfo can go"
    re_encodings.clear()
    kept = KeptContentInfo.keep(DER)
    assert kept.dump() == DER
    assert re_encodings == []


def test_kept_der_once_read_or_changed_is_asn1cryptos_own_dump() -> None:
    kept = KeptContentInfo.keep(DER)
    assert kept["content_type"].native == "data"  # children parsed: no longer "as made"
    assert kept.dump() == DER
    kept["content"] = core.OctetString(b"y")
    changed = kept.dump()
    assert changed != DER and cms.ContentInfo.load(changed)["content"].native == b"y"
