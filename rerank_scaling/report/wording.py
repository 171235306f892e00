"""What the report calls a study's trained models: its model family in words.

The model registry (:data:`rerank_scaling.models.FAMILIES`) says each
family's stage and noun: a reranker reorders BM25's candidates; a first-stage
retriever searches the whole corpus itself, and the report says so (its own
section on the recall of the retrieved lists). The family comes from the
table's ``family`` column, else the cells' ``config.json`` (``family``), else the
experiment file; tables without any are cross-encoders (rerankers), as every
study was before families. A family the registry does not know (another
toolkit's table) is called by its own name and counted a first-stage one. A
study of several first-stage families (sparse and dense) calls them
*retrievers*; its tables tell them apart by a family column.
"""

from __future__ import annotations

from dataclasses import dataclass

from rerank_scaling.models import FAMILIES

UNNAMED = "cross-encoder"  # the family of a table without a family column (every study before families)


def reranks(family: str) -> bool:
    """The family reorders candidate lists (its registry stage); unknown families do not."""
    return family in FAMILIES and FAMILIES[family].stage == "rerank"


@dataclass(frozen=True)
class Wording:
    family: str  # the study's family, or its families joined by " + "
    noun: str
    plural: str
    families: tuple[str, ...] = ()

    @property
    def first_stage(self) -> bool:
        """The models retrieve from the whole corpus (their list is compared with BM25's at the same depth)."""
        return not any(map(reranks, self.families or (self.family,)))

    @property
    def article(self) -> str:
        return "An" if self.noun[:1].lower() in "aeiou" else "A"


def wording(family: str | tuple[str, ...] | list[str] | None) -> Wording:
    """The words for one family, or for several (a tuple: "retrievers" when all are first-stage ones)."""
    families = tuple(dict.fromkeys([family] if isinstance(family, str) or family is None else family))
    families = tuple(f or UNNAMED for f in families) or (UNNAMED,)
    if len(families) == 1:
        name = families[0]
        noun, plural = FAMILIES[name].noun if name in FAMILIES else (name, f"{name} models")
        return Wording(name, noun, plural, families)
    noun, plural = ("model", "models") if any(map(reranks, families)) else ("retriever", "retrievers")
    return Wording(" + ".join(families), noun, plural, families)
