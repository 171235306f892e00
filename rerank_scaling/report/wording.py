"""What the report calls a study's trained models: its model family in words.

A cross-encoder reorders BM25's candidates (a *reranker*); every other family
here is a first-stage retriever that searches the whole corpus itself, and the
report says so (its own section on the recall of the retrieved lists). The
family comes from the cells' ``config.json`` (``family``), else the experiment
file; tables without either are rerankers, as every study was before families.
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
    family: str
    noun: str
    plural: str

    @property
    def first_stage(self) -> bool:
        """The models retrieve from the whole corpus (their list is compared with BM25's at the same depth)."""
        return self.family not in RERANK_FAMILIES

    @property
    def article(self) -> str:
        return "An" if self.noun[:1].lower() in "aeiou" else "A"


def wording(family: str | None) -> Wording:
    family = family or RERANK_FAMILIES[0]
    noun, plural = NOUNS.get(family, (family, f"{family} models"))
    return Wording(family, noun, plural)
