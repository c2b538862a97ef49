"""Generative methods: what a model's training step and sampler do over its named modules.

- :mod:`.base`: the :class:`Method` interface, :class:`DataSpec`, the step context and draws.
- :mod:`.flow_matching`, :mod:`.diffusion`: objectives of a time-conditioned field.
- :mod:`.field`: one network trained with such an objective (EPiC-FM, EPiC-JeDi).
- :mod:`.gan`: a generator and a critic trained adversarially (MDMA).
"""

from .base import DataSpec, Draws, Method, StepContext, masked_mse
from .diffusion import VPDiffusion
from .field import FieldMethod
from .flow_matching import FlowMatching
from .gan import GAN_LOSSES, AdversarialMethod

__all__ = ["Method", "DataSpec", "StepContext", "Draws", "masked_mse", "FlowMatching", "VPDiffusion", "FieldMethod",
           "AdversarialMethod", "GAN_LOSSES"]
