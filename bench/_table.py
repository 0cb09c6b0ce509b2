"""Shared plumbing of the benchmarks: aligned Markdown tables, JSON output, timing, intervals.

A :class:`Table` renders as plain text that is also a valid Markdown table (a pipe-delimited
header, an alignment row, one line per row, every column padded to one width), so a run's
output pastes straight into the README. Machine-readable output is separate: every benchmark
also builds plain records (``dict`` of ``str``, ``int``, ``float`` or ``bool``) and
:func:`emit` prints either the tables or one JSON document holding those records.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TextIO

from scipy import stats as sps

Value = str | int | float | bool
"""What a record field may hold (JSON scalars; numbers are always finite)."""
Record = dict[str, Value]
Align = Literal["l", "r"]


@dataclass
class Table:
    """A titled table of pre-formatted cells, rendered as aligned Markdown.

    Parameters
    ----------
    title
        Printed as a Markdown heading above the table.
    headers
        Column headers.
    align
        ``"l"`` or ``"r"`` per column; numbers read best right-aligned.
    notes
        Lines printed under the table (how to read it, caveats).

    Examples
    --------
    >>> t = Table("Demo", ["name", "value"], ["l", "r"])
    >>> t.add("pi", "3.14")
    >>> print(t.render())
    ### Demo
    <BLANKLINE>
    | name | value |
    | :--- | ----: |
    | pi   |  3.14 |
    """

    title: str
    headers: list[str]
    align: list[Align]
    notes: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.align) != len(self.headers):
            raise ValueError("one alignment per header")

    def add(self, *cells: str) -> None:
        """Append one row of already formatted cells."""
        if len(cells) != len(self.headers):
            raise ValueError(f"row has {len(cells)} cells, table has {len(self.headers)} columns")
        self.rows.append(list(cells))

    def render(self) -> str:
        """The table as aligned Markdown text (title, table, notes)."""
        widths = [
            max(3, len(h), *(len(r[i]) for r in self.rows)) for i, h in enumerate(self.headers)
        ]

        def line(cells: Sequence[str]) -> str:
            padded = (
                c.rjust(w) if a == "r" else c.ljust(w)
                for c, w, a in zip(cells, widths, self.align, strict=True)
            )
            return "| " + " | ".join(padded) + " |"

        rule = "| " + " | ".join(
            ("-" * (w - 1) + ":") if a == "r" else (":" + "-" * (w - 1))
            for w, a in zip(widths, self.align, strict=True)
        )
        out = [f"### {self.title}", "", line(self.headers), rule + " |"]
        out += [line(r) for r in self.rows]
        if self.notes:
            out.append("")
            out += self.notes
        return "\n".join(out)


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--quick``, ``--json`` and ``--seed``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and samples (smoke test, ~seconds)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of the tables"
    )
    parser.add_argument("--seed", type=int, default=20240601, help="root random seed")
    return parser


def check_record(record: Mapping[str, Value]) -> None:
    """Raise ``ValueError`` if a record holds a non-finite or non-scalar value."""
    for key, value in record.items():
        if isinstance(value, bool | str):
            continue
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"field {key!r} is not a finite number: {value!r}")


def emit(
    *,
    benchmark: str,
    tables: Sequence[Table],
    records: Mapping[str, Sequence[Record]],
    meta: Mapping[str, Value],
    summary: str,
    as_json: bool,
    out: TextIO | None = None,
) -> None:
    """Print the tables and the summary line, or one JSON document with the records."""
    stream = sys.stdout if out is None else out
    for rows in records.values():
        for record in rows:
            check_record(record)
    if as_json:
        doc = {
            "benchmark": benchmark,
            "meta": dict(meta),
            "tables": {name: [dict(r) for r in rows] for name, rows in records.items()},
            "summary": summary,
        }
        json.dump(doc, stream, indent=2, allow_nan=False)
        stream.write("\n")
        return
    header = ", ".join(f"{k}={v}" for k, v in meta.items())
    stream.write(f"# {benchmark} ({header})\n\n")
    for table in tables:
        stream.write(table.render() + "\n\n")
    stream.write(summary + "\n")
    stream.flush()


def repeat_ns(run: Callable[[], object], repeats: int) -> list[float]:
    """Wall time in nanoseconds of ``repeats`` calls of ``run``, after one warm-up call.

    The garbage collector is paused while timing (as :mod:`timeit` does), so a collection
    triggered by an earlier allocation does not land in one sample.
    """
    run()
    enabled = gc.isenabled()
    gc.disable()
    try:
        samples = []
        for _ in range(repeats):
            start = time.perf_counter_ns()
            run()
            samples.append(float(time.perf_counter_ns() - start))
    finally:
        if enabled:
            gc.enable()
    return samples


def per_call_ns(fn: Callable[[], object], number: int, repeats: int) -> list[float]:
    """Mean time of one call of ``fn`` (ns), measured ``repeats`` times over ``number`` calls."""

    def loop() -> None:
        for _ in range(number):
            fn()

    return [t / number for t in repeat_ns(loop, repeats)]


def median(samples: Sequence[float]) -> float:
    """Median of timing samples (robust to the noise of a shared machine)."""
    return float(statistics.median(samples))


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) confidence interval of a binomial proportion.

    Examples
    --------
    >>> lo, hi = clopper_pearson(0, 1000)
    >>> lo, round(hi, 5)
    (0.0, 0.00368)
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError("need 0 <= successes <= trials and trials > 0")
    tail = (1.0 - level) / 2.0
    lo = 0.0 if successes == 0 else float(sps.beta.ppf(tail, successes, trials - successes + 1))
    hi = (
        1.0
        if successes == trials
        else float(sps.beta.ppf(1 - tail, successes + 1, trials - successes))
    )
    return lo, hi


def elapsed_since(start: float) -> float:
    """Seconds since a :func:`time.perf_counter` reading, rounded to 0.1 s."""
    return round(time.perf_counter() - start, 1)
