"""Print the project's dependencies pinned at their floors (``name>=X`` -> ``name==X``), one per line.

    python .ci/floor_pins.py                  # every dependency (a name without a floor stays as it is)
    python .ci/floor_pins.py --only torch     # one floor version
    python .ci/floor_pins.py --extra test     # an optional-dependency group's
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][^,;\s]*)\s*$")


def pins(requirements: list[str]) -> dict[str, str]:
    """``name -> pinned requirement`` (``name==floor``, or the requirement as it is without a floor)."""
    out = {}
    for req in requirements:
        m = FLOOR.match(req.split(";")[0])
        name = (m.group(1) if m else re.split(r"[<>=!~ ]", req, 1)[0]).strip()
        out[name] = f"{name}=={m.group(2)}" if m else req.strip()
    return out


def main(argv: list[str]) -> int:
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"]
    if "--extra" in argv:
        reqs = project["optional-dependencies"][argv[argv.index("--extra") + 1]]
    pinned = pins(reqs)
    if "--only" in argv:
        print(pinned[argv[argv.index("--only") + 1]].split("==")[-1])
    else:
        print("\n".join(v for k, v in pinned.items() if k != "torch"))  # torch: installed first, on its own
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
