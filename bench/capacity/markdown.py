"""Markdown tables and the number formats the printed figures use."""

import math
from collections.abc import Sequence

GIB = 2**30


def runs_text(rates: Sequence[float]) -> str:
    return ", ".join(f"{r:,.1f}" for r in rates)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def gib(value: float) -> str:
    return f"{value / GIB:,.1f} GiB"


def cores(value: float) -> str:
    """Whole cores, with the fraction they round up from."""
    return f"{math.ceil(value):,} ({value:,.2f})"
