"""Model + its size ladder: what a cross-encoder is and how big it is."""

from rerank_scaling.models.cross_encoder import CrossEncoder, PairTokenizer
from rerank_scaling.models.ladder import LADDERS, ModelSpec, load_backbone, load_cross_encoder, parameter_counts

__all__ = ["CrossEncoder", "PairTokenizer", "LADDERS", "ModelSpec", "load_backbone", "load_cross_encoder", "parameter_counts"]
