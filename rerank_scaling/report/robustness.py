"""The robustness section: how much quality each model loses when a share of its training labels is noise.

For studies whose ``supervision`` axis holds noisy variants (``human-noise50``:
half of the positive labels replaced by random BM25 candidates,
:mod:`rerank_scaling.data.noise`) beside the clean source. Per system (family,
model, objective, label source) and eval set:

* its final value at each noise level (seeds averaged per query first), the
  change from clean to the noisiest level, and the **robustness slope**: the
  least-squares slope of the value against the noise fraction, quoted per 10
  points of noise (two levels: the change over the gap);
* whether clean and noisiest differ: the paired randomization test over the
  set's queries, Holm over the systems;
* with several families (Zeng et al.: sparse retrievers are more robust to noisy
  supervision than dense ones), per (model, objective, source) the
  difference-in-differences ``(noisy - clean)_A - (noisy - clean)_B`` per
  query, tested the same way: which family loses less, and whether it is told
  apart.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from rerank_scaling.config import supervision_parts
from rerank_scaling.report import significance as sig
from rerank_scaling.report import tables as T
from rerank_scaling.report.study import HEADLINE, Study

RECALL = "recall@100"


def _noise_columns(finals: pl.DataFrame) -> pl.DataFrame:
    parts = {s: supervision_parts(s) for s in finals["supervision"].unique().to_list() if s is not None}
    return finals.with_columns(
        pl.col("supervision").replace_strict({s: p[0] for s, p in parts.items()}, default=None).alias("source"),
        pl.col("supervision").replace_strict({s: p[1] for s, p in parts.items()}, default=0.0,
                                             return_dtype=pl.Float64).alias("noise"))


def slope(noise: list[float], values: list[float]) -> float:
    """The least-squares slope of ``values`` against ``noise`` (fractions), per 10 points of noise."""
    x, y = np.asarray(noise, dtype=float), np.asarray(values, dtype=float)
    return float(np.polyfit(x, y, 1)[0] / 10) if np.ptp(x) > 0 else float("nan")


def _per_query(per_query: pl.DataFrame | None, runs: list[str], eval_set: str, metric: str) -> pl.DataFrame | None:
    if per_query is None:
        return None
    rows = per_query.filter(pl.col("run").is_in(runs) & (pl.col("eval_set") == eval_set) & (pl.col("metric") == metric))
    return rows.group_by("qid").agg(pl.col("value").mean()).sort("qid") if rows.height else None


def systems(study: Study, eval_set: str, metric: str) -> list[dict]:
    """One record per system with a clean and at least one noisy level on ``eval_set``: its key, levels
    (noise -> mean value), change, slope, and per-query frames of clean and noisiest (None without them)."""
    finals = study.finals
    if "supervision" not in finals.columns:
        return []
    df = _noise_columns(finals.filter((pl.col("eval_set") == eval_set) & (pl.col("metric") == metric)))
    keys = [k for k in ("family", "model", "objective", "params", "source") if k in df.columns]
    out = []
    for key, group in df.group_by(keys, maintain_order=True):
        levels = group.group_by("noise").agg(pl.col("value").mean(), pl.col("run")).sort("noise")
        noise = levels["noise"].to_list()
        if len(noise) < 2 or noise[0] != 0.0:
            continue
        values = levels["value"].to_list()
        runs = levels["run"].to_list()
        out.append({"key": dict(zip(keys, key)), "levels": dict(zip(noise, values)), "change": values[-1] - values[0],
                    "slope": slope(noise, values), "top": noise[-1],
                    "clean": _per_query(study.per_query, runs[0], eval_set, metric),
                    "noisy": _per_query(study.per_query, runs[-1], eval_set, metric)})
    return out


def _test(a: pl.DataFrame | None, b: pl.DataFrame | None) -> tuple[np.ndarray, np.ndarray] | None:
    if a is None or b is None:
        return None
    joined = a.join(b, on="qid", suffix="_b")
    return (joined["value"].to_numpy(), joined["value_b"].to_numpy()) if joined.height else None


def _holm_tests(pairs: list[tuple[np.ndarray, np.ndarray] | None]) -> list[tuple[float, float] | None]:
    """(p, Holm p) per pair (None where a pair has no per-query values), Holm over the tested ones."""
    raw = [None if p is None else sig.randomization_p(*p, seed=i) for i, p in enumerate(pairs)]
    tested = [p for p in raw if p is not None]
    adjusted = iter(sig.holm(tested)) if tested else iter(())
    return [None if p is None else (p, next(adjusted)) for p in raw]


def _p(test: tuple[float, float] | None) -> str:
    if test is None:
        return T.DASH
    return f"**{test[1]:.3g}**" if test[1] < sig.ALPHA else f"{test[1]:.3g}"


def family_contrasts(records: list[dict]) -> list[dict]:
    """Per (model, objective, source) with two families: each family's change and the difference-in-differences
    per query (first family minus second, families in sorted order)."""
    by = {}
    for r in records:
        k = r["key"]
        if "family" not in k:
            return []
        by.setdefault((k["model"], k["objective"], k["source"], r["top"]), {})[k["family"]] = r
    out = []
    for (model, objective, source, top), fams in by.items():
        if len(fams) != 2:
            continue
        (fa, a), (fb, b) = sorted(fams.items())
        diff = None
        if all(x is not None for x in (a["clean"], a["noisy"], b["clean"], b["noisy"])):
            da = a["noisy"].join(a["clean"], on="qid", suffix="_c").select(
                "qid", (pl.col("value") - pl.col("value_c")).alias("value"))
            db = b["noisy"].join(b["clean"], on="qid", suffix="_c").select(
                "qid", (pl.col("value") - pl.col("value_c")).alias("value"))
            diff = _test(da, db)
        out.append({"model": model, "objective": objective, "source": source, "top": top, "families": (fa, fb),
                    "changes": (a["change"], b["change"]), "pair": diff})
    return out


def robustness_section(study: Study) -> list[str]:
    metrics = [m for m in (HEADLINE, RECALL) if m in study.metrics]
    if not metrics or not any(systems(study, es.name, metrics[0]) for es in study.eval_sets):
        return []
    lines = ["## 0. Robustness to noisy supervision", "",
             "Each model trained on clean labels and on labels with a share of the positives replaced by random "
             "BM25 candidates (`supervision = \"<source>-noise<P>\"`). *Change*: noisiest minus clean; *slope*: "
             "least-squares change per 10 points of noise; *p*: paired randomization test of noisiest vs clean "
             f"over the queries ({sig.N_FLIPS:,} sign flips), Holm over the systems; bold: Holm p < {sig.ALPHA}.", ""]
    for es in study.eval_sets:
        for metric in metrics:
            records = systems(study, es.name, metric)
            if not records:
                continue
            levels = sorted({n for r in records for n in r["levels"]})
            tests = _holm_tests([_test(r["noisy"], r["clean"]) for r in records])
            several = len({r["key"].get("family") for r in records}) > 1
            rows = []
            for r, t in zip(records, tests):
                k = r["key"]
                rows.append([*([k["family"]] if several else []), f"`{k['model']}`", k["objective"], T.size(k["params"]),
                             k["source"], *[T.num(r["levels"].get(n)) for n in levels], T.signed(r["change"]),
                             T.signed(r["slope"]), _p(t)])
            headers = [*(["family"] if several else []), "model", "objective", "N", "labels",
                       *[("clean" if n == 0 else f"noise {n:.0%}") for n in levels], "change", "slope / 10 pts",
                       "p (Holm)"]
            lines += [f"### {es.name}: {metric}", "",
                      T.md_table(headers, rows, "l" * (4 + several) + "r" * (len(levels) + 3)), ""]
            hurt = sum(t is not None and t[1] < sig.ALPHA and r["change"] < 0 for r, t in zip(records, tests))
            lines += [f"Noise lowers {metric} significantly in {hurt} of {len(records)} models; mean slope "
                      f"{T.signed(float(np.mean([r['slope'] for r in records])))} per 10 points of noise.", ""]
            contrasts = family_contrasts(records)
            if contrasts:
                ctests = _holm_tests([c["pair"] for c in contrasts])
                fa, fb = contrasts[0]["families"]
                crow = [[f"`{c['model']}`", c["objective"], T.signed(c["changes"][0]), T.signed(c["changes"][1]),
                         T.signed(c["changes"][0] - c["changes"][1]), _p(t)] for c, t in zip(contrasts, ctests)]
                lines += [f"Which family is more robust? Per model and objective, {fa}'s change minus {fb}'s (positive: "
                          f"{fa} loses less or gains more), tested per query as a difference of differences, Holm over "
                          "the pairs.", "",
                          T.md_table(["model", "objective", f"{fa} change", f"{fb} change", "difference",
                                      "p (Holm)"], crow, "llrrrr"), ""]
                less = sum(c["changes"][0] > c["changes"][1] for c in contrasts)
                signif = [(c, t) for c, t in zip(contrasts, ctests) if t is not None and t[1] < sig.ALPHA]
                lines += [f"{fa} fares better under noise than {fb} in {less} of {len(contrasts)} pairs; differences significant: "
                          f"{len(signif)} of {len(contrasts)}"
                          + (" (" + ", ".join(f"`{c['model']}` {c['objective']}: {T.signed(c['changes'][0] - c['changes'][1])}"
                                             for c, _ in signif) + ")." if signif else "."), ""]
    return lines
