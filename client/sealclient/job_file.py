"""Sealing jobs on the client side (issue 16): marks from ``--mark`` options and from a
TOML or JSON job file, as the protobuf marks a SubmitRequest carries.

A ``--mark`` is one mark written as space-separated ``key=value`` fields (quote a value
with spaces the shell way)::

    --mark 'seal=contract pages=last anchor=（盖章）'
    --mark 'seal=contract cross=all'                    # 骑缝章 across every page
    --mark 'seal=legal_rep pages=last anchor=（盖章） x=45 y=0 size=20'

Keys: ``seal`` (required), ``pages`` ("3", "1,3,5", "2-7", "last", "all"; default
"last"), ``x``/``y`` (mm: the seal's centre from the page's top-left corner, or with
``anchor`` the offset from the text's centre), ``size`` (mm; default the seal's),
``anchor``, ``matches`` (how often the anchor may occur on a page, default 1),
``cross`` (a cross-page seal over these pages, e.g. "all" or "2-9") and ``group``
(cross-page seals per group of N pages; default one across them all).

A job file (``--job FILE``, ``.toml`` or ``.json``) has the same keys with their long
names, under ``marks`` (every document's marks) and/or ``documents`` (a batch manifest:
each ``file`` with its own ``marks``)::

    [[marks]]
    seal = "contract"
    pages = "last"
    anchor_text = "（盖章）"

    [[marks]]
    seal = "contract"
    cross_page = "all"

    [[documents]]
    file = "contract-a.pdf"          # relative to the job file
    [[documents.marks]]
    seal = "contract"
    pages = "1"
    x_mm = 150
    y_mm = 230

Everything is checked here before any upload: an unknown key, a bad page set or a
missing seal is an error naming the mark (and the file) and what to write instead.
The daemon checks again, with the documents.
"""

from __future__ import annotations

import json
import math
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealapi.v1 import common_pb2
from sealclient.errors import LocalInputError
from seald.domain.errors import InvalidInput
from seald.domain.marks import PageSet

# --mark's short keys -> the job file's long names.
_SHORT = {
    "seal": "seal",
    "pages": "pages",
    "x": "x_mm",
    "y": "y_mm",
    "size": "size_mm",
    "anchor": "anchor_text",
    "matches": "anchor_max_matches",
    "cross": "cross_page",
    "group": "group_size",
}
_LONG = frozenset(_SHORT.values())


@dataclass(frozen=True)
class Job:
    """A job file's contents: the marks every document gets and a manifest's documents
    with their own marks (both may be empty)."""

    marks: tuple[common_pb2.Mark, ...]
    documents: tuple[tuple[Path, tuple[common_pb2.Mark, ...]], ...]


def _bad(what: str, problem: str) -> LocalInputError:
    return LocalInputError("bad_mark", f"{what}: {problem}")


def _number(what: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(what, f"{key} must be a number of millimetres")
    try:
        number = float(value)
    except ValueError:
        raise _bad(what, f"{key}={value!r} is not a number of millimetres") from None
    if not math.isfinite(number):
        raise _bad(what, f"{key} must be a finite number")
    return number


def _count(what: str, key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise _bad(what, f"{key} must be a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _bad(what, f"{key}={value!r} is not a whole number") from None
    if number < 0 or str(number) != str(value).strip():
        raise _bad(what, f"{key}={value!r} must be a whole number >= 0")
    return number


def _pages(what: str, key: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _bad(what, f'{key} must be text such as "3", "1,3,5", "2-7", "last" or "all"')
    try:
        return PageSet.parse(value, what=f"{what} {key}").text()
    except InvalidInput as ex:
        raise LocalInputError("bad_page_set", ex.message) from None


def mark_from_fields(fields: Mapping[str, Any], *, what: str) -> common_pb2.Mark:
    """One mark from its long-named fields (a job file's table, or a parsed --mark)."""
    unknown = sorted(set(fields) - _LONG)
    if unknown:
        raise _bad(what, f"unknown key {unknown[0]!r}; use {', '.join(sorted(_LONG))}")
    seal = fields.get("seal")
    if not isinstance(seal, str) or not seal.strip():
        raise _bad(what, "name its seal (seal=SEAL_ID)")
    mark = common_pb2.Mark(seal_id=seal.strip())
    if "cross_page" in fields:
        if "anchor_text" in fields or "pages" in fields:
            raise _bad(what, "a cross-page seal takes cross_page (and group_size), not pages or anchor")
        mark.cross_page.CopyFrom(
            common_pb2.CrossPage(
                pages=_pages(what, "cross_page", fields["cross_page"]),
                group_size=_count(what, "group_size", fields.get("group_size", 0)),
            )
        )
    else:
        if "group_size" in fields:
            raise _bad(what, "group_size belongs to a cross-page seal (cross_page=PAGES)")
        mark.pages = _pages(what, "pages", fields.get("pages", "last"))
        anchor = fields.get("anchor_text", "")
        if not isinstance(anchor, str):
            raise _bad(what, "anchor_text must be text")
        mark.anchor_text = anchor
        if not anchor and ("x_mm" not in fields or "y_mm" not in fields):
            raise _bad(what, "say where it goes: x and y (mm from the top-left), or an anchor text")
        if "anchor_max_matches" in fields:
            mark.anchor_max_matches = _count(what, "anchor_max_matches", fields["anchor_max_matches"])
    for key in ("x_mm", "y_mm", "size_mm"):
        if key in fields:
            setattr(mark, key, _number(what, key, fields[key]))
    return mark


def parse_mark_option(text: str, *, position: int) -> common_pb2.Mark:
    """A ``--mark`` option's value (``key=value`` fields, shell-quoted)."""
    what = f"--mark {position}"
    try:
        words = shlex.split(text)
    except ValueError as ex:
        raise _bad(what, f"{ex}; quote a value with spaces") from None
    fields: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key not in _SHORT:
            raise _bad(what, f"{word!r} is not KEY=VALUE with a key of {', '.join(_SHORT)}")
        if _SHORT[key] in fields:
            raise _bad(what, f"{key} given twice")
        fields[_SHORT[key]] = value
    return mark_from_fields(fields, what=what)


def _marks(raw: Any, *, where: str) -> tuple[common_pb2.Mark, ...]:
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise LocalInputError("bad_job_file", f"{where}: marks must be a list of tables/objects")
    return tuple(mark_from_fields(m, what=f"{where} mark {i + 1}") for i, m in enumerate(raw))


def load_job(path: Path) -> Job:
    """A TOML (``.toml``) or JSON (``.json``) job file; errors name the file and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as ex:
        raise LocalInputError("bad_job_file", f"{path}: cannot read the job file ({ex})") from None
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        elif path.suffix.lower() == ".toml":
            raw = tomllib.loads(text)
        else:
            raise LocalInputError("bad_job_file", f"{path}: a job file ends in .toml or .json")
    except (ValueError, tomllib.TOMLDecodeError) as ex:
        raise LocalInputError("bad_job_file", f"{path}: not valid {path.suffix[1:].upper()}: {ex}") from None
    if not isinstance(raw, dict):
        raise LocalInputError("bad_job_file", f"{path}: the job file must be a table/object")
    unknown = sorted(set(raw) - {"marks", "documents"})
    if unknown:
        raise LocalInputError(
            "bad_job_file", f"{path}: unknown key {unknown[0]!r}; a job file has marks and documents"
        )
    marks = _marks(raw.get("marks", []), where=str(path))
    documents: list[tuple[Path, tuple[common_pb2.Mark, ...]]] = []
    docs_raw = raw.get("documents", [])
    if not isinstance(docs_raw, list):
        raise LocalInputError("bad_job_file", f"{path}: documents must be a list")
    for i, doc in enumerate(docs_raw):
        where = f"{path} document {i + 1}"
        if not isinstance(doc, dict) or not isinstance(doc.get("file"), str):
            raise LocalInputError("bad_job_file", f"{where}: give its file = \"NAME.pdf\"")
        extra = sorted(set(doc) - {"file", "marks"})
        if extra:
            raise LocalInputError("bad_job_file", f"{where}: unknown key {extra[0]!r}; use file and marks")
        file = Path(doc["file"])
        marks_of_doc = _marks(doc.get("marks", []), where=where)
        documents.append((file if file.is_absolute() else path.parent / file, marks_of_doc))
    if not marks and not documents:
        raise LocalInputError("bad_job_file", f"{path}: the job has no marks; add [[marks]] or [[documents]]")
    if not marks and any(not m for _, m in documents):
        raise LocalInputError(
            "bad_job_file", f"{path}: a document without marks needs the job's own [[marks]]"
        )
    return Job(marks, tuple(documents))


def manifest_marks(
    job: Job, files: Sequence[Path]
) -> tuple[list[Path], list[common_pb2.Mark], list[list[common_pb2.Mark]]]:
    """The files to upload, the request's marks and (for a manifest) each file's own marks.

    Files named on the command line use the job's marks; a manifest's documents their own
    (or the job's when they list none)."""
    paths = list(files) + [p for p, _ in job.documents]
    if not job.documents:
        return paths, list(job.marks), []
    # Every document then carries its marks itself (the request's own list stays empty).
    per_doc = [list(job.marks) for _ in files] + [list(m or job.marks) for _, m in job.documents]
    return paths, [], per_doc
