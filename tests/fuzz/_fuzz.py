"""The fuzz harness: run a hypothesis property for a time budget, and the oracle every target shares.

A target passes an input to a reader of untrusted bytes; the reader must either raise a project
error (:class:`pcdata.errors.PcdataError`, which the CLIs print as one ``error:`` line) whose message
names the file or key, or return data that passes the format's checks. Any other exception (and
any warning: the suite turns them into errors) is a crash, which hypothesis shrinks and reports.

``PCDATA_FUZZ_SECONDS`` sets each target's budget (default 4 s: the smoke run of
``scripts/test.sh``); rounds of ``EXAMPLES`` inputs run until it is spent. Failures are kept in
hypothesis' example database (``.hypothesis/``) and replayed first on the next run.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcdata.errors import PcdataError

SECONDS = float(os.environ.get("PCDATA_FUZZ_SECONDS", "4"))
EXAMPLES = 20  # inputs per round; a round is one hypothesis run with a fresh seed


def run_for(check: Callable[[Any], None], strategy: st.SearchStrategy, seconds: float | None = None) -> int:
    """Run ``check`` on inputs drawn from ``strategy`` until ``seconds`` (default the budget) are
    spent; at least one round. Returns the number of rounds."""

    @settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(strategy)
    def round_(value):
        check(value)

    end, rounds = time.monotonic() + (SECONDS if seconds is None else seconds), 0
    while True:
        round_()
        rounds += 1
        if time.monotonic() >= end:
            return rounds


def project_error_or(call: Callable[[], Any], names: str | tuple[str, ...]) -> Any:
    """``call()``'s result, or None when it raised a project error; such an error must be one
    line naming one of ``names`` (the file or key). Any other exception propagates: a crash."""
    try:
        return call()
    except PcdataError as err:
        msg = str(err)
        assert msg and "\n" not in msg, f"error message is not one line: {msg!r}"
        wanted = (names,) if isinstance(names, str) else names
        assert any(n in msg for n in wanted), f"error message names none of {wanted}: {msg!r}"
        return None


# -- mutations of parsed documents (JSON/YAML) -----------------------------------------------------
FLOATS = (float("nan"), float("inf"), float("-inf"), -0.0, 1e308, -1e308, 5e-324, 0.5, -1.5)
INTS = (0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30)

garbage = st.recursive(
    st.one_of(st.none(), st.booleans(), st.sampled_from(INTS), st.integers(), st.sampled_from(FLOATS), st.floats(),
              st.text(max_size=8), st.sampled_from(["", "x", "\x00", "\udcff", "é", "../..", "/abs", "1", "f1", "nan"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a nested document (the root is ``()``)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated(draw, doc: Any, max_mutations: int = 3) -> Any:
    """A copy of ``doc`` with 1..max_mutations edits at random places: a value replaced with
    garbage (wrong type, extreme number, NaN, odd text, nested junk), a key dropped or renamed,
    a list emptied or an element doubled."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, max_mutations))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            doc = draw(garbage) if draw(st.integers(0, 9)) == 0 else doc
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        op = draw(st.sampled_from(["replace", "replace", "replace", "drop", "rename", "double", "empty"]))
        if op == "replace":
            parent[key] = draw(garbage)
        elif op == "drop":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = parent.pop(key)
        elif op == "double" and isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(parent[key])))
        elif op == "empty" and isinstance(parent[key], (list, dict)):
            parent[key] = type(parent[key])()
    return doc


@st.composite
def mutated_bytes(draw, data: bytes) -> bytes:
    """``data`` truncated, with bytes flipped or inserted, or replaced by deeply nested brackets."""
    op = draw(st.sampled_from(["truncate", "flip", "insert", "deep", "utf8"]))
    if op == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if op == "deep":
        return b"[" * draw(st.sampled_from([10, 1000, 100_000])) + b"]" * draw(st.sampled_from([0, 10]))
    if op == "utf8":
        return data[: len(data) // 2] + b"\xff\xfe" + data[len(data) // 2 :]
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "flip" and buf:
            buf[i] ^= 1 << draw(st.integers(0, 7))
        else:
            buf[i:i] = draw(st.binary(min_size=1, max_size=8))
    return bytes(buf)


def dump(doc: Any) -> str:
    """JSON as Python writes it (NaN and Infinity included, as a hand edit or a buggy writer might)."""
    return json.dumps(doc, ensure_ascii=False)


def write_text(path, text: str) -> None:
    """Write ``text`` as UTF-8; a lone surrogate in it becomes invalid UTF-8, as in a damaged file."""
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
