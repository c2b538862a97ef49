"""Built-in data: Pythia 8 + FastJet jets and parametrised calorimeter showers, in the public layouts."""

from .jets import JetGenConfig, generate_jets
from .showers import generate_showers

__all__ = ["JetGenConfig", "generate_jets", "generate_showers"]
