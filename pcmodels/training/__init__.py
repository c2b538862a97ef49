"""Training: the trainer, its step machinery (optimisers, EMA, DDP), checkpoints, logs, process groups.

Loaded on first use, so that :mod:`pcmodels.run` can use the checkpoint helpers without the trainer.
"""

__all__ = ["train", "Trainer", "TrainResult", "Stepper", "Distributed"]


def __getattr__(name: str):
    if name in ("train", "Trainer", "TrainResult"):
        from . import trainer

        return getattr(trainer, name)
    if name == "Stepper":
        from .step import Stepper

        return Stepper
    if name == "Distributed":
        from .distributed import Distributed

        return Distributed
    raise AttributeError(name)
