"""Generative methods (objective + samplers): flow matching and VP diffusion; GANs and flows join here."""

from .base import Method, masked_mse
from .diffusion import VPDiffusion
from .flow_matching import FlowMatching

METHODS = {"epic-fm": FlowMatching, "epic-jedi": VPDiffusion}

__all__ = ["Method", "masked_mse", "FlowMatching", "VPDiffusion", "METHODS"]
