"""Networks: EPiC layers (more architectures, mean-field attention and tree generators, join here)."""

from .epic import EPiCConfig, EPiCLayer, EPiCNetwork, cosine_embedding

__all__ = ["EPiCConfig", "EPiCLayer", "EPiCNetwork", "cosine_embedding"]
