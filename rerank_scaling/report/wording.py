"""What the report calls a study's trained models: its model family in words.

A cross-encoder reorders BM25's candidates (a *reranker*); every other family
here is a first-stage retriever that searches the whole corpus itself, and the
report says so (its own section on the recall of the retrieved lists). The
family comes from the table's ``family`` column, else the cells' ``config.json``
(``family``), else the experiment file; tables without any are rerankers, as
every study was before families. A study of several first-stage families (sparse
and dense) calls them *retrievers*; its tables tell them apart by a family column.
"""

from __future__ import annotations

from dataclasses import dataclass

RERANK_FAMILIES = ("cross-encoder",)
# family -> (noun, plural); a family not listed is called by its own name
NOUNS = {
    "cross-encoder": ("reranker", "rerankers"),
    "bi-encoder": ("bi-encoder", "bi-encoders"),
    "sparse": ("sparse retriever", "sparse retrievers"),
}


@dataclass(frozen=True)
class Wording:
    family: str  # the study's family, or its families joined by " + "
    noun: str
    plural: str
    families: tuple[str, ...] = ()

    @property
    def first_stage(self) -> bool:
        """The models retrieve from the whole corpus (their list is compared with BM25's at the same depth)."""
        return not set(self.families or (self.family,)) & set(RERANK_FAMILIES)

    @property
    def article(self) -> str:
        return "An" if self.noun[:1].lower() in "aeiou" else "A"


def wording(family: str | tuple[str, ...] | list[str] | None) -> Wording:
    """The words for one family, or for several (a tuple: "retrievers" when all are first-stage ones)."""
    families = tuple(dict.fromkeys([family] if isinstance(family, str) or family is None else family))
    families = tuple(f or RERANK_FAMILIES[0] for f in families) or (RERANK_FAMILIES[0],)
    if len(families) == 1:
        noun, plural = NOUNS.get(families[0], (families[0], f"{families[0]} models"))
        return Wording(families[0], noun, plural, families)
    mixed = set(families) & set(RERANK_FAMILIES)
    noun, plural = ("model", "models") if mixed else ("retriever", "retrievers")
    return Wording(" + ".join(families), noun, plural, families)
