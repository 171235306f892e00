"""`rerank-scaling report DIR`: the study's REPORT.md and figures (see :func:`build_report`)."""

from __future__ import annotations

from rerank_scaling.values import AMOUNT, NON_NEGATIVE_INT, OUTPUT_FILE, PathValue


def register(sub) -> None:
    p = sub.add_parser("report", help="write a study's REPORT.md and figures from its collected results")
    p.add_argument("study", type=PathValue("folder", "study folder"),
                   help="study folder (results.parquet, or cells/ to collect first)")
    p.add_argument("--out", type=OUTPUT_FILE, default=None,
                   help="markdown file to write (default: STUDY/REPORT.md); figures go to figures/ beside it")
    p.add_argument("--fit-max-params", type=AMOUNT, default=None,
                   help="fit laws on models with at most this many non-embedding parameters, e.g. 20M "
                        "(default: the second-largest size, so the largest is held out)")
    p.add_argument("--bootstrap", type=NON_NEGATIVE_INT, default=300, help="bootstrap resamples (default 300; seeded)")
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    from rerank_scaling.report.build import build_report

    path = build_report(args.study, args.out, args.fit_max_params, args.bootstrap)
    print(path)
    return 0
