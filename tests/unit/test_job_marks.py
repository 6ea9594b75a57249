"""Issue 16: the pure model of a sealing job's marks (seald.domain.marks) and how the
approval digest covers marks and the seal's impression."""

from __future__ import annotations

import pytest

from seald.domain.digest import (
    DigestDocument,
    DigestPlacement,
    DigestSeal,
    canonical_approval_subject,
    digest_of,
)
from seald.domain.errors import InvalidInput
from seald.domain.marks import (
    CrossPage,
    Mark,
    PageSet,
    PageSetKind,
    check_marks_shape,
    cross_page_groups,
    signing_order,
)


@pytest.mark.parametrize(
    ("text", "kind", "resolved_in_5"),
    [
        ("3", PageSetKind.ONE, (3,)),
        ("1, 3,5", PageSetKind.LIST, (1, 3, 5)),
        ("2-4", PageSetKind.RANGE, (2, 3, 4)),
        ("last", PageSetKind.LAST, (5,)),
        ("0", PageSetKind.LAST, (5,)),
        ("all", PageSetKind.ALL, (1, 2, 3, 4, 5)),
    ],
)
def test_job_page_set_parses_resolves_and_round_trips(
    text: str, kind: PageSetKind, resolved_in_5: tuple[int, ...]
) -> None:
    ps = PageSet.parse(text)
    assert ps.kind is kind
    assert ps.resolve(5) == resolved_in_5
    assert PageSet.parse(ps.text()) == ps


@pytest.mark.parametrize("text", ["", "x", "3-3", "4-2", "0-2", "1,1", "-1", "1,,2"])
def test_job_bad_page_set_is_refused_naming_it(text: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        PageSet.parse(text, what="mark 2 pages")
    assert exc.value.reason == "bad_page_set"
    assert "mark 2 pages" in str(exc.value)


def test_job_mark_on_a_page_the_document_lacks_names_the_page() -> None:
    with pytest.raises(InvalidInput) as exc:
        PageSet.parse("2-9").resolve(4, what="mark 1 (seal contract) pages")
    assert exc.value.reason == "page_out_of_range"
    assert "page 5" in str(exc.value) and "mark 1 (seal contract)" in str(exc.value)


def test_job_cross_page_over_one_page_is_refused() -> None:
    mark = Mark("contract", PageSet.parse("all"), cross_page=CrossPage(PageSet.parse("3")))
    with pytest.raises(InvalidInput) as exc:
        check_marks_shape([mark])
    assert exc.value.reason == "cross_page_needs_pages"
    assert "mark 1 (seal contract)" in str(exc.value)


def test_job_more_marks_than_the_limit_are_refused() -> None:
    marks = [Mark("contract", PageSet.parse(str(i + 1))) for i in range(4)]
    check_marks_shape(marks, max_marks=4)
    with pytest.raises(InvalidInput) as exc:
        check_marks_shape(marks, max_marks=3)
    assert exc.value.reason == "too_many_marks"


def test_job_cross_page_groups_keep_no_one_page_tail() -> None:
    assert cross_page_groups((1, 2, 3, 4, 5, 6, 7), 3) == ((1, 2, 3), (4, 5, 6, 7))
    assert cross_page_groups((1, 2, 3, 4), 2) == ((1, 2), (3, 4))
    assert cross_page_groups((1, 2, 3), 0) == ((1, 2, 3),)
    with pytest.raises(InvalidInput):
        cross_page_groups((4,), 0)


def test_job_signing_order_is_each_seals_first_mark() -> None:
    marks = [
        Mark("legal", PageSet.parse("last")),
        Mark("contract", PageSet.parse("all"), cross_page=CrossPage(PageSet.parse("all"))),
        Mark("legal", PageSet.parse("1")),
        Mark("contract", PageSet.parse("last"), anchor_text="（盖章）"),
    ]
    assert signing_order(marks) == ("legal", "contract")


_PLACEMENT = DigestPlacement(page=1, x_mm=100, y_mm=200, size_mm=42, anchor_text="", cross_page=False)
_DOCS = [DigestDocument("a.pdf", "00" * 32, 10)]


def _subject(**extra: object) -> bytes:
    return canonical_approval_subject(
        request_id="r1",
        seal_id="contract",
        seal_certificate_sha256="11" * 32,
        requester="zhang.wei",
        reason="sign",
        category="contract",
        placement=_PLACEMENT,
        documents=extra.pop("documents", _DOCS),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def test_r06_digest_without_marks_or_impression_is_unchanged() -> None:
    # The key set of a pre-issue-16 subject: nothing new appears unless used.
    assert b"marks" not in _subject() and b"impression" not in _subject()


def test_r02_r06_impression_and_every_mark_field_change_the_digest() -> None:
    base_marks = (Mark("contract", PageSet.parse("last"), x_mm=150, y_mm=240, anchor_text="（盖章）"),)
    seals = (DigestSeal("contract", "11" * 32, "aa" * 32),)
    base = digest_of(_subject(marks=base_marks, seals=seals))
    assert digest_of(_subject(seal_impression_sha256="aa" * 32)) != digest_of(_subject())
    variants = [
        (Mark("contract", PageSet.parse("2"), x_mm=150, y_mm=240, anchor_text="（盖章）"),),
        (Mark("contract", PageSet.parse("last"), x_mm=150.01, y_mm=240, anchor_text="（盖章）"),),
        (Mark("contract", PageSet.parse("last"), x_mm=150, y_mm=240, anchor_text="盖章"),),
        (Mark("legal", PageSet.parse("last"), x_mm=150, y_mm=240, anchor_text="（盖章）"),),
        (
            Mark(
                "contract",
                PageSet.parse("last"),
                x_mm=150,
                y_mm=240,
                anchor_text="（盖章）",
                anchor_max_matches=2,
            ),
        ),
    ]
    for marks in variants:
        assert digest_of(_subject(marks=marks, seals=seals)) != base
    other_face = (DigestSeal("contract", "11" * 32, "bb" * 32),)
    assert digest_of(_subject(marks=base_marks, seals=other_face)) != base
    own = [DigestDocument("a.pdf", "00" * 32, 10, marks=base_marks)]
    assert digest_of(_subject(marks=base_marks, seals=seals, documents=own)) != base
