"""Sealing jobs: the marks a request puts on its documents (issue 16).

A request carries an ordered list of marks. A mark is one seal's visible impression(s):
which seal, on which pages, where (mm from the top-left corner, or centred on an anchor
text plus an offset), and its size; or a cross-page seal (骑缝章) sliced over a page range
or over groups of N pages. A document gets one signature per seal: every mark of one seal
is page content under that seal's one signature, the way the cross-page seal already is.

This module is the pure model both sides share: the daemon (submit checks, approval
digest, signing order) and the client (job files, the digest an approver recomputes).
Nothing here opens a PDF; checks that need the document (does page 7 exist, is the anchor
on the page exactly once) are in seald.signing.

The signing order is fixed and documented: seals in the order of their FIRST mark in the
request's list. The last signature covers the whole document, so a job that ends with the
contract seal has the contract seal over everything before it.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import InvalidInput

# A request may carry at most this many marks unless [limits] says otherwise; every mark
# is drawn and previewed per page, so the limit bounds the work one approval can order.
DEFAULT_MAX_MARKS = 16


class PageSetKind(enum.StrEnum):
    ONE = "one"  # pages = (n,)
    LIST = "list"  # pages = (a, b, ...) in the order given, no repeats
    RANGE = "range"  # pages = (first, last), first < last
    LAST = "last"  # pages = ()
    ALL = "all"  # pages = ()


_RANGE_RE = re.compile(r"^(\d+)-(\d+)$")


@dataclass(frozen=True)
class PageSet:
    """Which pages a mark goes on, written as text the way a person writes it:
    ``"3"``, ``"1,3,5"``, ``"2-7"``, ``"last"``, ``"all"`` (1-based page numbers)."""

    kind: PageSetKind
    pages: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str, *, what: str = "pages") -> PageSet:
        """Parse a page set; an error names ``what`` (e.g. "mark 2 pages") and the fix."""
        t = text.strip().lower().replace(" ", "")
        hint = 'write one page "3", a list "1,3,5", a range "2-7", "last" or "all"'
        if t in ("last", "0"):
            return cls(PageSetKind.LAST)
        if t in ("all", "*"):
            return cls(PageSetKind.ALL)
        if not t:
            raise InvalidInput(f"{what} is empty; {hint}", reason="bad_page_set")
        m = _RANGE_RE.match(t)
        if m:
            first, last = int(m.group(1)), int(m.group(2))
            if first < 1 or last <= first:
                raise InvalidInput(
                    f"{what} {text!r} is not a range of at least two pages; {hint}",
                    reason="bad_page_set",
                )
            return cls(PageSetKind.RANGE, (first, last))
        parts = t.split(",")
        if not all(p.isdigit() for p in parts):
            raise InvalidInput(f"{what} {text!r} is not a page set; {hint}", reason="bad_page_set")
        pages = tuple(int(p) for p in parts)
        if any(p < 1 for p in pages):
            raise InvalidInput(f"{what} {text!r}: pages are numbered from 1; {hint}", reason="bad_page_set")
        if len(set(pages)) != len(pages):
            raise InvalidInput(
                f"{what} {text!r} names a page twice; name each page once", reason="bad_page_set"
            )
        if len(pages) == 1:
            return cls(PageSetKind.ONE, pages)
        return cls(PageSetKind.LIST, pages)

    def text(self) -> str:
        """The canonical text form (what parse() reads back; used in the digest)."""
        if self.kind is PageSetKind.LAST:
            return "last"
        if self.kind is PageSetKind.ALL:
            return "all"
        if self.kind is PageSetKind.RANGE:
            return f"{self.pages[0]}-{self.pages[1]}"
        return ",".join(str(p) for p in self.pages)

    def resolve(self, page_count: int, *, what: str = "pages") -> tuple[int, ...]:
        """The 1-based pages of a document of ``page_count`` pages, in order.

        A page beyond the document is an error naming the mark, never silently dropped:
        the approvers approved marks on those pages."""
        if page_count <= 0:
            raise InvalidInput("the document has no pages; send a PDF with content", reason="zero_pages")
        if self.kind is PageSetKind.LAST:
            return (page_count,)
        if self.kind is PageSetKind.ALL:
            return tuple(range(1, page_count + 1))
        if self.kind is PageSetKind.RANGE:
            wanted: tuple[int, ...] = tuple(range(self.pages[0], self.pages[1] + 1))
        else:
            wanted = self.pages
        missing = [p for p in wanted if p > page_count]
        if missing:
            raise InvalidInput(
                f"{what} {self.text()!r} names page {missing[0]} but the document has "
                f'{page_count} page(s); use pages 1..{page_count} or "last"',
                reason="page_out_of_range",
            )
        return wanted


@dataclass(frozen=True)
class CrossPage:
    """A cross-page seal (骑缝章) over ``pages`` (a range, a list or "all"): the seal is
    cut into slices, one per page, on the pages' right edge. ``group_size`` N > 0 makes
    one seal per consecutive group of N pages (the last group takes the remainder and
    must still have two pages); 0 = one seal across all the pages."""

    pages: PageSet
    group_size: int = 0


@dataclass(frozen=True)
class Mark:
    """One seal's mark(s) on a document. Exactly one of: a position (``x_mm``/``y_mm``,
    the seal's CENTRE in mm from the displayed page's top-left corner), an anchor
    (``anchor_text``; ``x_mm``/``y_mm`` are then the offset from the text's centre), or a
    cross-page seal (``cross_page``; ``pages`` is then unused and must be "all")."""

    seal_id: str
    pages: PageSet
    x_mm: float = 0.0
    y_mm: float = 0.0
    size_mm: float = 0.0  # 0 = the seal's registered size
    anchor_text: str = ""
    # How often the anchor may occur on one page: a mark centred on "（盖章）" must find
    # it exactly once per page unless the job allows more (then each occurrence is sealed).
    anchor_max_matches: int = 1
    cross_page: CrossPage | None = None

    @property
    def is_cross_page(self) -> bool:
        return self.cross_page is not None


def mark_label(index: int, mark: Mark) -> str:
    """How errors name a mark: its 1-based position in the job and its seal."""
    return f"mark {index + 1} (seal {mark.seal_id})"


def check_marks_shape(marks: Sequence[Mark], *, max_marks: int = DEFAULT_MAX_MARKS) -> None:
    """Refuse a mark list that no document could satisfy; each error names the mark.

    Document-dependent checks (pages that exist, anchors found) come later, with the PDF.
    """
    if not marks:
        raise InvalidInput("a sealing job needs at least one mark", reason="no_marks")
    if len(marks) > max_marks:
        raise InvalidInput(
            f"{len(marks)} marks exceed the limit of {max_marks} per request; "
            "split the job or ask the administrator to raise [limits] max_marks",
            reason="too_many_marks",
        )
    for i, mark in enumerate(marks):
        label = mark_label(i, mark)
        if not mark.seal_id:
            raise InvalidInput(f"mark {i + 1} names no seal; give its seal id", reason="bad_mark")
        numbers = (mark.x_mm, mark.y_mm, mark.size_mm)
        if not all(math.isfinite(v) for v in numbers):
            raise InvalidInput(f"{label}: position and size must be finite numbers", reason="bad_placement")
        if mark.size_mm < 0:
            raise InvalidInput(
                f"{label}: size_mm must be > 0, or 0 for the seal's size", reason="bad_placement"
            )
        if mark.cross_page is not None:
            if mark.anchor_text:
                raise InvalidInput(
                    f"{label}: a cross-page seal has no anchor; drop the anchor or the cross-page",
                    reason="bad_mark",
                )
            cp = mark.cross_page
            if cp.pages.kind is PageSetKind.ONE:
                raise InvalidInput(
                    f"{label}: a cross-page seal over one page ({cp.pages.text()}) is not a "
                    'cross-page seal; give a range of at least two pages or "all"',
                    reason="cross_page_needs_pages",
                )
            if cp.pages.kind is PageSetKind.LAST:
                raise InvalidInput(
                    f'{label}: a cross-page seal needs at least two pages, not "last"',
                    reason="cross_page_needs_pages",
                )
            if cp.group_size < 0 or cp.group_size == 1:
                raise InvalidInput(
                    f"{label}: cross-page group size {cp.group_size} is invalid; "
                    "use 0 (one seal across all pages) or 2 or more",
                    reason="cross_page_needs_pages",
                )
        else:
            if mark.anchor_max_matches < 1:
                raise InvalidInput(f"{label}: anchor_max_matches must be at least 1", reason="bad_mark")
            if not mark.anchor_text and (mark.x_mm < 0 or mark.y_mm < 0):
                raise InvalidInput(
                    f"{label}: x_mm and y_mm are the seal's centre from the page's top-left "
                    "corner and must not be negative",
                    reason="bad_placement",
                )


def cross_page_groups(
    pages: Sequence[int], group_size: int, *, what: str = "cross-page seal"
) -> tuple[tuple[int, ...], ...]:
    """Split resolved pages into the groups that each get one cross-page seal.

    The remainder joins the last group (a one-page tail is no cross-page seal)."""
    if len(pages) < 2:
        raise InvalidInput(
            f"{what} spans {len(pages)} page(s) of this document; it needs at least two",
            reason="cross_page_needs_pages",
        )
    if group_size == 0 or group_size >= len(pages):
        return (tuple(pages),)
    groups = [tuple(pages[i : i + group_size]) for i in range(0, len(pages), group_size)]
    if len(groups[-1]) < 2:
        tail = groups.pop()
        groups[-1] = groups[-1] + tail
    return tuple(groups)


def signing_order(marks: Iterable[Mark]) -> tuple[str, ...]:
    """The seals of a job in signing order: the order of each seal's first mark."""
    seen: dict[str, None] = {}
    for mark in marks:
        seen.setdefault(mark.seal_id, None)
    return tuple(seen)


def marks_of_seal(marks: Iterable[Mark], seal_id: str) -> tuple[Mark, ...]:
    """The marks one seal's signature carries, in job order."""
    return tuple(m for m in marks if m.seal_id == seal_id)


def _hundredths(value_mm: float) -> int:
    return round(value_mm * 100)


def canonical_mark(mark: Mark) -> dict[str, object]:
    """A mark as the approval digest covers it (integers and strings only: no float
    formatting can differ between the daemon, the client and another language)."""
    out: dict[str, object] = {
        "seal_id": mark.seal_id,
        "pages": mark.pages.text(),
        "x_hundredth_mm": _hundredths(mark.x_mm),
        "y_hundredth_mm": _hundredths(mark.y_mm),
        "size_hundredth_mm": _hundredths(mark.size_mm),
        "anchor_text": mark.anchor_text,
        "anchor_max_matches": mark.anchor_max_matches,
    }
    if mark.cross_page is not None:
        out["cross_page"] = {
            "pages": mark.cross_page.pages.text(),
            "group_size": mark.cross_page.group_size,
        }
    return out


def mark_from_canonical(raw: object, *, what: str = "mark") -> Mark:
    """The inverse of canonical_mark (a signed approval statement carries the digest's
    own shape); anything malformed is an InvalidInput naming ``what``."""
    if not isinstance(raw, dict):
        raise InvalidInput(f"{what} is not an object", reason="statement_invalid")

    def integer(key: str, source: dict[str, object] = raw) -> int:
        value = source.get(key)
        if type(value) is not int:
            raise InvalidInput(f"{what}.{key} is missing or not an integer", reason="statement_invalid")
        return value

    def text(key: str, source: dict[str, object] = raw) -> str:
        value = source.get(key)
        if not isinstance(value, str):
            raise InvalidInput(f"{what}.{key} is missing or not text", reason="statement_invalid")
        return value

    cross_raw = raw.get("cross_page")
    cross = None
    if cross_raw is not None:
        if not isinstance(cross_raw, dict):
            raise InvalidInput(f"{what}.cross_page is not an object", reason="statement_invalid")
        cross = CrossPage(
            PageSet.parse(text("pages", cross_raw), what=f"{what}.cross_page.pages"),
            integer("group_size", cross_raw),
        )
    return Mark(
        seal_id=text("seal_id"),
        pages=PageSet.parse(text("pages"), what=f"{what}.pages"),
        x_mm=integer("x_hundredth_mm") / 100,
        y_mm=integer("y_hundredth_mm") / 100,
        size_mm=integer("size_hundredth_mm") / 100,
        anchor_text=text("anchor_text"),
        anchor_max_matches=integer("anchor_max_matches"),
        cross_page=cross,
    )
