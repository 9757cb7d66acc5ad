"""The transformer (model.transformer), its sizing rule and FLOP count (model.sizing), sampling
(model.generate)."""
from model.transformer import ModelConfig, Transformer

__all__ = ["ModelConfig", "Transformer"]
