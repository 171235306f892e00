"""Markdown helpers: tables, number formats, bold-the-best.  Presentation only."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rerank_scaling.scaling.util import format_size

DASH = "—"


def esc(text) -> str:
    """A table cell: pipes escaped, newlines flattened."""
    return " ".join(str(text).split()).replace("|", "\\|")


def md_table(headers: Sequence[str], rows: Sequence[Sequence], align: str | None = None) -> str:
    """A GitHub-flavoured markdown table; ``align`` is one of ``l``/``r``/``c`` per column."""
    align = align or "l" * len(headers)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def plain(v) -> str:
    """A table value as text; whole floats (budgets, seeds read back as floats) without ``.0``."""
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return str(int(v))
    return DASH if v is None else str(v)


def num(v, digits: int = 4) -> str:
    """A value with ``digits`` decimals (``—`` when missing or not finite)."""
    return f"{v:.{digits}f}" if finite(v) else DASH


def sig(v, digits: int = 4) -> str:
    """``digits`` significant digits (law parameters span many magnitudes)."""
    return f"{v:.{digits}g}" if finite(v) else DASH


def signed(v, digits: int = 4) -> str:
    return f"{v:+.{digits}f}" if finite(v) else DASH


def pct(v, digits: int = 1, plus: bool = False) -> str:
    return (f"{v:+.{digits}%}" if plus else f"{v:.{digits}%}") if finite(v) else DASH


size = format_size  # parameter counts: ``53.4K``, ``3.21M``, ``1.5B`` (one formatter, in the analyzer)


def interval(lo, hi, digits: int = 4) -> str:
    """``[lo, hi]``; ``none`` without a bootstrap, ``unbounded`` when fewer points than parameters + 1."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "none"
    if math.isinf(lo) or math.isinf(hi):
        return "unbounded"
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def covered(f) -> bool | None:
    """A forecast's coverage, ``None`` when its interval is not finite (nothing to be inside of)."""
    if f.covered is None or not (finite(f.lower) and finite(f.upper)):
        return None
    return f.covered


def yes_no(v: bool | None) -> str:
    return DASH if v is None else ("yes" if v else "**no**")


def bold_best(values: Sequence[float | None], lower_is_better: bool, digits: int = 4) -> list[str]:
    """Format a column, the best value(s) in bold."""
    present = [v for v in values if finite(v)]
    best = (min if lower_is_better else max)(present) if present else None
    out = []
    for v in values:
        text = num(v, digits)
        out.append(f"**{text}**" if best is not None and finite(v) and num(v, digits) == num(best, digits) else text)
    return out


def bullet(label: str, text: str) -> str:
    return f"- **{label}**: {text}"
