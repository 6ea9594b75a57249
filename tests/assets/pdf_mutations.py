"""Hypothesis strategies for mutated PDFs (the PDF mutation fuzzer of issue 8).

A mutation starts from a valid generated PDF and applies a few operations: byte flips,
deletions, insertions, truncation, duplication of a slice, and structure-aware
replacement of a PDF token (a number, a name, a keyword, a reference) by a value that
parsers get wrong (huge or negative counts and lengths, self references, unbalanced
brackets). Positions are taken modulo the current length, so examples shrink well.
"""

from __future__ import annotations

import functools
import re

from hypothesis import strategies as st
from make_pdfs import valid_pdf

TOKEN = re.compile(
    rb"-?\d+(?:\.\d+)?|/[A-Za-z]+|<<|>>|\[|\]"
    rb"|\b(?:obj|endobj|stream|endstream|xref|trailer|startxref|R)\b"
)
NASTY = [
    b"-1",
    b"0",
    b"2147483648",
    b"99999999999999999999",
    b"1.5e308",
    b"1 0 R",
    b"2 0 R",
    b"/Kids [2 0 R 2 0 R]",
    b"/Parent 2 0 R",
    b"/Count 1000000000",
    b"/Length 999999999",
    b"/Type /Pages",
    b"/OpenAction << /S /JavaScript /JS (x) >>",
    b"<<",
    b">>",
    b"[",
    b"]",
    b"(",
    b")",
    b"obj",
    b"endobj",
    b"stream\n",
    b"endstream",
    b"%%EOF",
    b"",
]


@functools.cache
def bases() -> tuple[bytes, ...]:
    """Made once, outside any strategy (the generator itself uses randomness)."""
    return (valid_pdf(1), valid_pdf(3), valid_pdf(1, rotate=90), valid_pdf(2, chinese=False))


def _apply(data: bytes, ops: list[tuple[str, int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for op, a, b, blob in ops:
        n = max(len(buf), 1)
        pos = a % n
        if op == "flip" and buf:
            buf[pos] = b % 256
        elif op == "delete":
            del buf[pos : pos + 1 + b % 64]
        elif op == "insert":
            buf[pos:pos] = blob
        elif op == "truncate":
            del buf[pos:]
        elif op == "duplicate":
            buf[pos:pos] = buf[pos : pos + 1 + b % 512]
        elif op == "token":
            tokens = list(TOKEN.finditer(bytes(buf)))
            if tokens:
                t = tokens[a % len(tokens)]
                buf[t.start() : t.end()] = NASTY[b % len(NASTY)]
    return bytes(buf)


OPERATION = st.tuples(
    st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate", "token", "token", "token"]),
    st.integers(0, 2**20),
    st.integers(0, 2**16),
    st.binary(max_size=24),
)


def mutated_pdf() -> st.SearchStrategy[bytes]:
    """A valid PDF with 1-6 mutations applied."""
    return st.builds(
        _apply,
        st.sampled_from(bases()),
        st.lists(OPERATION, min_size=1, max_size=6),
    )
