"""rerank-scaling: scaling studies of cross-encoder rerankers."""

__version__ = "0.1.0"
