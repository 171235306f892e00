"""BM25's settings and tokenizer: what the candidate lists (``bm25.py``) and the saved index (``index.py``)
both tokenise with."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rerank_scaling.errors import UserError


def _pystemmer_available() -> bool:
    try:
        import Stemmer  # noqa: F401
    except ImportError:
        return False
    return True


def _default_stemmer() -> str:
    return "english" if _pystemmer_available() else "none"


@dataclass(frozen=True)
class BM25Settings:
    """BM25 parameters (Anserini-like defaults) and tokenisation.

    ``stemmer``: a PyStemmer (Snowball) language such as ``"english"``, or
    ``"none"``.  ``stopwords``: a bm25s stopword language (``"en"``) or ``"none"``.
    """

    k1: float = 0.9
    b: float = 0.4
    method: str = "lucene"
    stemmer: str = field(default_factory=_default_stemmer)
    stopwords: str = "en"

    def key(self) -> dict:
        return asdict(self)


def tokenizer(settings: BM25Settings):
    """The bm25s tokenizer ``settings`` ask for (lower-cased, stopwords, a PyStemmer stemmer)."""
    import bm25s

    stemmer = None
    if settings.stemmer and settings.stemmer != "none":
        try:
            import Stemmer
        except ImportError:
            raise UserError(
                f"BM25 stemmer '{settings.stemmer}' needs PyStemmer (pip install PyStemmer) or use stemmer='none'"
            ) from None
        try:
            stemmer = Stemmer.Stemmer(settings.stemmer)
        except KeyError:
            raise UserError(f"unknown PyStemmer language '{settings.stemmer}'") from None
    stopwords = None if settings.stopwords in ("", "none", None) else settings.stopwords
    return bm25s.tokenization.Tokenizer(lower=True, stopwords=stopwords, stemmer=stemmer)
