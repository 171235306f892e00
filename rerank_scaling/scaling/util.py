"""Small presentation helpers shared by the analyzer and the report (no analysis here)."""

from __future__ import annotations

import math

DASH = "—"


def jsonable(obj):
    """``obj`` with every non-finite float (NaN, inf) replaced by ``None``, recursively
    through dicts, lists and tuples (tuples become lists), so ``json.dump`` writes valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def format_size(v) -> str:
    """Parameter counts and budgets: ``53.4K``, ``3.21M``, ``1.5B`` (``—`` when missing or not finite)."""
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return DASH
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"
