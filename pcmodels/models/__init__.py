"""The model families. Importing this package registers every model (:mod:`pcmodels.registry`);
a new family is one module or package here plus its import below."""

from . import calopointflow, deeptree, epic, mdma  # noqa: F401  (registration on import)

__all__: list[str] = []
