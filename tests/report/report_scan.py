"""Checks a report's markdown for numbers and paths a reader must never see (importable helper).

* an absolute machine path (``/work/...``, ``/home/...``, ``C:\\...``, ``~/...``): paths are relative to the
  study folder or as the user gave them;
* ``nan`` / ``inf`` as a word;
* an R² below -1 (a number in an R² column, or after "R²" in text);
* a forecast, prediction or interval of a metric outside the metric's range ([0, 1] for rank metrics, >= 0
  for entropies and costs), in any table that names its metric (a ``metric`` column, a metric in a header,
  or one in the lines just above the table).
"""

from __future__ import annotations

import re

from rerank_scaling.report.kinds import metric_range

_ABS = re.compile(r"(?:^|[\s(\[`'\"=:,])((?:/[A-Za-z0-9_.+-]+){2,}/?|~/[A-Za-z0-9_.-]+|[A-Za-z]:\\[A-Za-z0-9_.\\-]+)")
_NAN = re.compile(r"(?<![\w@-])[-+±]?(nan|inf|infinity)(?![\w])", re.IGNORECASE)
_R2_TEXT = re.compile(r"R²\s*(?:=|:)?\s*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)")
_INTERVAL = re.compile(r"\[\s*(-?[\d.]+(?:e[-+]?\d+)?)\s*,\s*(-?[\d.]+(?:e[-+]?\d+)?)\s*\]")
_METRIC = re.compile(r"(?<![\w-])((?:retained-)?(?:(?:ndcg|mrr|recall|p|precision)@\d+|map)"
                     r"|ce(?:-corpus|-candidates)?@\d+)(?![\w@-])")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:e[-+]?\d+)?$")
_SLACK = 1e-9


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def _tables(lines: list[str]):
    """(first line number, header cells, rows of cells, the 3 lines above) of every markdown table."""
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:|]+\|$", lines[i + 1].strip()):
            header, rows, j = _cells(lines[i]), [], i + 2
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(_cells(lines[j]))
                j += 1
            yield i + 1, header, rows, lines[max(0, i - 3):i]
            i = j
        else:
            i += 1


def _metric_of(header: list[str], row: list[str], above: list[str]) -> str | None:
    if "metric" in header:
        return row[header.index("metric")]
    for text in (" ".join(header), *reversed(above)):
        found = _METRIC.search(text)
        if found:
            return found.group(1)
    return None


def problems(text: str) -> list[str]:
    """Every problem of a report's markdown, one line each (``line N: ...``)."""
    lines = text.splitlines()
    out = []
    for n, line in enumerate(lines, 1):
        for m in _ABS.finditer(line):
            if "://" not in line[max(0, m.start() - 8):m.end()]:
                out.append(f"line {n}: absolute path {m.group(1)!r}")
        for m in _NAN.finditer(line):
            out.append(f"line {n}: {m.group(0)!r}")
        for m in _R2_TEXT.finditer(line):
            if float(m.group(1)) < -1:
                out.append(f"line {n}: R² {m.group(1)}")
    for start, header, rows, above in _tables(lines):
        r2 = [i for i, h in enumerate(header) if "R²" in h]
        values = [i for i, h in enumerate(header) if re.search(r"interval|predicted|forecast", h)
                  and "forecast -" not in h]
        for k, row in enumerate(rows):
            where = f"line {start + 2 + k}"
            for i in r2:
                if i < len(row) and _NUMBER.match(row[i]) and float(row[i]) < -1:
                    out.append(f"{where}: R² {row[i]}")
            metric = _metric_of(header, row, above)
            if metric is None:
                continue
            lo_b, hi_b = metric_range(metric)
            for i in values:
                if i >= len(row):
                    continue
                cell = row[i].strip("*")
                numbers = [float(v) for pair in _INTERVAL.findall(cell) for v in pair]
                if _NUMBER.match(cell):
                    numbers.append(float(cell))
                for v in numbers:
                    if v < lo_b - _SLACK or v > hi_b + _SLACK:
                        out.append(f"{where}: {metric} {header[i]} {cell} outside [{lo_b:g}, {hi_b:g}]")
    return out
