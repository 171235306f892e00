"""Deterministic query splits and nested data budgets.

Both order queries by ``sha256(f"{salt}:{seed}:{qid}")``: the result does not
depend on the input order, on ``PYTHONHASHSEED`` or on the platform, and adding
a query moves only that query (plus at most one query across each split
boundary), so splits stay stable as far as exact split sizes allow.
"""

from __future__ import annotations

import math

from rerank_scaling.data.util import stable_key
from rerank_scaling.errors import UserError

DEFAULT_FRACTIONS = {"train": 0.6, "dev": 0.2, "test": 0.2}


def _order(qids, salt: str, seed: int) -> list[str]:
    unique = set(str(q) for q in qids)
    return sorted(unique, key=lambda q: (stable_key(f"{salt}:{seed}:{q}"), q))


def split_queries(
    qids, fractions: dict[str, float] | None = None, seed: int = 0
) -> dict[str, list[str]]:
    """Split ``qids`` into named parts of the given ``fractions`` (default 60/20/20).

    Queries are ordered by a seeded sha256 of their id; part ``i`` takes the
    slice ``[round(n * c_{i-1}), round(n * c_i))`` of that order, where ``c_i``
    is the cumulative fraction (the last part ends at ``n``).  The parts are
    disjoint, cover every (unique) qid, and each list is returned in that
    hashed order.  Fractions must be positive and sum to 1.
    """
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    if not fractions:
        raise UserError("split fractions are empty")
    for name, f in fractions.items():
        if not isinstance(f, (int, float)) or not f > 0:
            raise UserError(f"split fraction for '{name}' must be > 0, got {f!r}")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise UserError(f"split fractions must sum to 1, got {total:g} ({fractions})")
    order = _order(qids, "split", seed)
    n = len(order)
    out: dict[str, list[str]] = {}
    cum, start = 0.0, 0
    names = list(fractions)
    for i, name in enumerate(names):
        cum += fractions[name]
        end = n if i == len(names) - 1 else min(n, int(math.floor(n * cum + 0.5)))
        out[name] = order[start:end]
        start = end
    return out


def nested_budget(qids: list[str], budget: int, seed: int) -> list[str]:
    """The first ``budget`` queries of a seeded, order-free permutation of ``qids``.

    Smaller budgets are prefixes of larger ones (same ``seed``), so a data
    scaling curve trains on nested query sets.  Raises :class:`UserError` if
    ``budget`` is negative or exceeds the number of (unique) queries.
    """
    order = _order(qids, "budget", seed)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise UserError(f"query budget must be a non-negative integer, got {budget!r}")
    if budget > len(order):
        raise UserError(f"query budget {budget} exceeds the {len(order)} available queries")
    return order[:budget]
