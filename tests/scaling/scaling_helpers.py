"""Plain helpers shared by the scaling tests (importable: pytest puts this folder on sys.path)."""

import numpy as np


def saturating(N, a=0.76, g=0.08, c=-0.3):
    """Increasing saturating truth a - g*(N/1e8)^c (the size law with b = -g*1e8^-c)."""
    return a - g * (np.asarray(N, dtype=float) / 1e8) ** c
