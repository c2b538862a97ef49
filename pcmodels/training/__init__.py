"""Training: configuration, the loop, safe checkpoints, logs."""

from .config import TrainConfig, load_config
from .trainer import TrainResult, build_method, build_network, train

__all__ = ["TrainConfig", "load_config", "train", "TrainResult", "build_network", "build_method"]
