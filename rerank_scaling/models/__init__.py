"""Model families and their size ladders.

``FAMILIES`` maps a family name (the ``family`` config key) to the module
and class that implement :class:`~rerank_scaling.models.family.ModelFamily`;
a new family is one new module plus one line here. This module is
torch-free: the family is imported only when it is used.
"""

from __future__ import annotations

import importlib

from rerank_scaling.errors import UserError

FAMILIES: dict[str, str] = {
    "cross-encoder": "rerank_scaling.models.cross_encoder:CrossEncoderFamily",
    "bi-encoder": "rerank_scaling.models.bi_encoder:BiEncoderFamily",
    "sparse": "rerank_scaling.models.sparse:SparseFamily",
}
# each family's score layout (its class's ``layout``), so configs pair objectives and families torch-free
LAYOUTS: dict[str, str] = {"cross-encoder": "groups", "bi-encoder": "in-batch", "sparse": "in-batch"}


def get_family(name: str):
    """The :class:`~rerank_scaling.models.family.ModelFamily` registered as ``name``."""
    if name not in FAMILIES:
        raise UserError(f"unknown model family '{name}' (choose from {', '.join(FAMILIES)})")
    module, _, attr = FAMILIES[name].partition(":")
    return getattr(importlib.import_module(module), attr)()
