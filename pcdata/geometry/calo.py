"""CaloChallenge calorimeter binnings: cylindrical voxels in (layer, angle, radius).

The four geometries of the Fast Calorimeter Simulation Challenge are read from the official
binning XML files shipped in ``pcdata/geometry/data/``:

=============  ======================  =========  ==========================================
name           XML file                voxels     binning
=============  ======================  =========  ==========================================
``ds1-photons``  binning_dataset_1_photons  368     5 of 24 layers used, irregular r, 1 or 10 angles
``ds1-pions``    binning_dataset_1_pions    533     7 of 24 layers used, irregular r, 1 or 10 angles
``ds2``          binning_dataset_2         6480     45 layers x 16 angles x 9 radii (4.65 mm)
``ds3``          binning_dataset_3        40500     45 layers x 50 angles x 18 radii (2.325 mm)
=============  ======================  =========  ==========================================

Voxel order (the order of the ``showers`` columns in the official HDF5 files): layer by layer;
inside a layer, angle bin by angle bin; inside an angle bin, radius fastest. A layer whose
``r_edges`` is ``"0"`` has no voxels (it keeps its layer id). Angle bins are
``linspace(-pi, pi, n_alpha + 1)`` for every layer, so a layer with one angle bin has its centre
at 0.
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import numpy as np

__all__ = ["GEOMETRY_NAMES", "GeometryName", "CaloGeometry", "get_geometry"]

GeometryName = Literal["ds1-photons", "ds1-pions", "ds2", "ds3"]
#: The geometries :func:`get_geometry` knows, in dataset order.
GEOMETRY_NAMES: tuple[str, ...] = ("ds1-photons", "ds1-pions", "ds2", "ds3")

_XML_FILES = {
    "ds1-photons": "binning_dataset_1_photons.xml",
    "ds1-pions": "binning_dataset_1_pions.xml",
    "ds2": "binning_dataset_2.xml",
    "ds3": "binning_dataset_3.xml",
}


def _readonly(a: np.ndarray) -> np.ndarray:
    # Tables are cached on a frozen geometry shared by every caller: make them immutable so a
    # caller's in-place edit cannot corrupt everybody else's binning.
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class CaloGeometry:
    """A cylindrical voxel binning: per layer, radial edges (mm) and a number of angle bins.

    Attributes:
        name: ``ds1-photons``, ``ds1-pions``, ``ds2``, ``ds3`` or the name given to :meth:`from_xml`.
        particle: the particle name of the XML ``<Bin>`` (``photon``, ``pion``, ``electron``).
        pid: its PDG id.
        r_edges: per layer, the radial bin edges in mm; ``()`` for a layer without voxels.
        n_alpha: per layer, the number of angle bins.

    Derived tables (``voxel_layer``, ``voxel_r_centre``, ...) are computed once and cached; they
    are read-only numpy arrays indexed by voxel number.
    """

    name: str
    particle: str
    pid: int
    r_edges: tuple[tuple[float, ...], ...]
    n_alpha: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.r_edges) != len(self.n_alpha):
            raise ValueError(f"geometry {self.name}: {len(self.r_edges)} r_edges for {len(self.n_alpha)} layers")
        for layer, (edges, na) in enumerate(zip(self.r_edges, self.n_alpha)):
            if na < 1:
                raise ValueError(f"geometry {self.name}: layer {layer} has n_bin_alpha {na}, expected >= 1")
            if len(edges) == 1 or (edges and np.any(np.diff(edges) <= 0)):
                raise ValueError(f"geometry {self.name}: layer {layer} r_edges must increase, found {edges}")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_xml(cls, path: str | os.PathLike, name: str | None = None) -> "CaloGeometry":
        """Read a CaloChallenge binning XML file (``<Bins><Bin><Layer .../>``, first ``<Bin>``).

        Raises:
            ValueError: no ``<Bin>``, layer ids not 0..n-1, or unparsable edges.
        """
        root = ET.parse(path).getroot()
        bin_ = root.find("Bin")
        if bin_ is None:
            raise ValueError(f"{path}: no <Bin> element")
        layers = {}
        for el in bin_.findall("Layer"):
            edges = tuple(float(v) for v in el.get("r_edges", "0").split(","))
            # "0" (one edge) is how the files say "this layer is not read out".
            layers[int(el.get("id"))] = (() if len(edges) == 1 else edges, int(el.get("n_bin_alpha", "1")))
        if sorted(layers) != list(range(len(layers))):
            raise ValueError(f"{path}: layer ids must be 0..n-1, found {sorted(layers)}")
        return cls(
            name=name or os.path.splitext(os.path.basename(path))[0],
            particle=bin_.get("name", ""),
            pid=int(bin_.get("pid", "0")),
            r_edges=tuple(layers[i][0] for i in range(len(layers))),
            n_alpha=tuple(layers[i][1] for i in range(len(layers))),
        )

    # -- sizes -------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """Number of layers, including those without voxels."""
        return len(self.r_edges)

    @functools.cached_property
    def n_r(self) -> np.ndarray:
        """Radial bins per layer, int64 ``[n_layers]`` (0 for a layer without voxels)."""
        return _readonly(np.array([max(len(e) - 1, 0) for e in self.r_edges], dtype=np.int64))

    @functools.cached_property
    def layer_sizes(self) -> np.ndarray:
        """Voxels per layer, int64 ``[n_layers]``."""
        return _readonly(self.n_r * np.asarray(self.n_alpha, dtype=np.int64))

    @functools.cached_property
    def layer_offsets(self) -> np.ndarray:
        """Index of each layer's first voxel, int64 ``[n_layers + 1]`` (the last is ``n_voxels``)."""
        out = np.zeros(self.n_layers + 1, dtype=np.int64)
        np.cumsum(self.layer_sizes, out=out[1:])
        return _readonly(out)

    @property
    def n_voxels(self) -> int:
        """Total number of voxels (columns of ``showers``)."""
        return int(self.layer_offsets[-1])

    @property
    def active_layers(self) -> tuple[int, ...]:
        """Ids of the layers that have voxels."""
        return tuple(int(i) for i in np.flatnonzero(self.layer_sizes))

    @property
    def is_regular(self) -> bool:
        """True when every layer has the same angle and radius binning (ds2, ds3)."""
        return len(set(self.r_edges)) == 1 and len(set(self.n_alpha)) == 1 and bool(self.r_edges[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_layers, n_alpha, n_r)`` for a regular geometry: ``showers.reshape(N, *shape)``.

        Raises:
            ValueError: the geometry is irregular (dataset 1).
        """
        if not self.is_regular:
            raise ValueError(f"geometry {self.name} has irregular layers: no (layer, alpha, r) array shape")
        return (self.n_layers, self.n_alpha[0], len(self.r_edges[0]) - 1)

    # -- per-layer bins ----------------------------------------------------------------------
    def r_edges_of(self, layer: int) -> np.ndarray:
        """Radial edges (mm) of one layer, float64; empty for a layer without voxels."""
        return np.asarray(self.r_edges[layer], dtype=np.float64)

    def r_centres_of(self, layer: int) -> np.ndarray:
        """Radial bin centres (mm) of one layer, float64."""
        e = self.r_edges_of(layer)
        return 0.5 * (e[1:] + e[:-1])

    def alpha_edges_of(self, layer: int) -> np.ndarray:
        """Angle edges (rad) of one layer: ``linspace(-pi, pi, n_alpha + 1)``."""
        return np.linspace(-np.pi, np.pi, self.n_alpha[layer] + 1)

    def alpha_centres_of(self, layer: int) -> np.ndarray:
        """Angle bin centres (rad) of one layer: midpoints of :meth:`alpha_edges_of`."""
        e = self.alpha_edges_of(layer)
        return 0.5 * (e[1:] + e[:-1])

    # -- per-voxel tables --------------------------------------------------------------------
    @functools.cached_property
    def _cells(self) -> np.ndarray:
        # int64 [n_voxels, 3] = (layer, alpha_bin, r_bin), built in the file's voxel order.
        parts = []
        for layer, (n_r, n_a) in enumerate(zip(self.n_r, self.n_alpha)):
            if n_r:
                a, r = np.meshgrid(np.arange(n_a), np.arange(n_r), indexing="ij")  # r fastest
                parts.append(np.stack([np.full(a.size, layer), a.ravel(), r.ravel()], axis=1))
        cells = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int64)
        return _readonly(cells.astype(np.int64))

    @property
    def voxel_cells(self) -> np.ndarray:
        """``(layer, alpha_bin, r_bin)`` of every voxel, int64 ``[n_voxels, 3]``, in file order."""
        return self._cells

    @property
    def voxel_layer(self) -> np.ndarray:
        """Layer of every voxel, int64 ``[n_voxels]``."""
        return self._cells[:, 0]

    @property
    def voxel_alpha(self) -> np.ndarray:
        """Angle bin of every voxel, int64 ``[n_voxels]``."""
        return self._cells[:, 1]

    @property
    def voxel_r(self) -> np.ndarray:
        """Radial bin of every voxel, int64 ``[n_voxels]``."""
        return self._cells[:, 2]

    @functools.cached_property
    def _bounds(self) -> np.ndarray:
        # float64 [n_voxels, 4] = (alpha_low, alpha_high, r_low, r_high).
        out = np.zeros((self.n_voxels, 4))
        for layer in self.active_layers:
            sl = slice(self.layer_offsets[layer], self.layer_offsets[layer + 1])
            a_e, r_e = self.alpha_edges_of(layer), self.r_edges_of(layer)
            a, r = self.voxel_alpha[sl], self.voxel_r[sl]
            out[sl] = np.stack([a_e[a], a_e[a + 1], r_e[r], r_e[r + 1]], axis=1)
        return _readonly(out)

    @property
    def voxel_alpha_edges(self) -> np.ndarray:
        """``(low, high)`` angle (rad) of every voxel, float64 ``[n_voxels, 2]``."""
        return self._bounds[:, 0:2]

    @property
    def voxel_r_edges(self) -> np.ndarray:
        """``(low, high)`` radius (mm) of every voxel, float64 ``[n_voxels, 2]``."""
        return self._bounds[:, 2:4]

    @functools.cached_property
    def voxel_alpha_centre(self) -> np.ndarray:
        """Angle bin centre (rad) of every voxel, float64 ``[n_voxels]``."""
        return _readonly(self._bounds[:, 0:2].mean(axis=1))

    @functools.cached_property
    def voxel_r_centre(self) -> np.ndarray:
        """Radial bin centre (mm) of every voxel, float64 ``[n_voxels]``."""
        return _readonly(self._bounds[:, 2:4].mean(axis=1))

    # -- index <-> cell ----------------------------------------------------------------------
    def voxel_to_cell(self, index: np.ndarray | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(layer, alpha_bin, r_bin)`` of voxel numbers (vectorised, int64).

        Raises:
            IndexError: an index outside ``0..n_voxels-1``.
        """
        idx = np.asarray(index, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_voxels):
            raise IndexError(f"geometry {self.name}: voxel index out of range 0..{self.n_voxels - 1}")
        cells = self._cells[idx]
        return cells[..., 0], cells[..., 1], cells[..., 2]

    def valid_cell(self, layer, alpha_bin, r_bin) -> np.ndarray:
        """Boolean mask: which ``(layer, alpha_bin, r_bin)`` triples name a voxel."""
        layer, alpha_bin, r_bin = (np.asarray(v, dtype=np.int64) for v in (layer, alpha_bin, r_bin))
        ok = (layer >= 0) & (layer < self.n_layers)
        lay = np.where(ok, layer, 0)
        n_alpha = np.asarray(self.n_alpha, dtype=np.int64)[lay]
        return ok & (alpha_bin >= 0) & (alpha_bin < n_alpha) & (r_bin >= 0) & (r_bin < self.n_r[lay])

    def cell_to_voxel(self, layer, alpha_bin, r_bin) -> np.ndarray:
        """Voxel numbers of ``(layer, alpha_bin, r_bin)`` triples (vectorised, int64).

        Raises:
            IndexError: a triple that names no voxel (first one quoted).
        """
        layer, alpha_bin, r_bin = (np.asarray(v, dtype=np.int64) for v in (layer, alpha_bin, r_bin))
        ok = self.valid_cell(layer, alpha_bin, r_bin)
        if not ok.all():
            i = np.unravel_index(int(np.flatnonzero(~ok.ravel())[0]), ok.shape)
            raise IndexError(
                f"geometry {self.name}: cell (layer {int(layer[i])}, alpha_bin {int(alpha_bin[i])}, "
                f"r_bin {int(r_bin[i])}) is not a voxel ({int((~ok).sum())} such cells)"
            )
        return self.layer_offsets[layer] + alpha_bin * self.n_r[layer] + r_bin

    # -- physical position -> voxel ----------------------------------------------------------
    @functools.cached_property
    def _edge_groups(self) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        # Layers grouped by identical r edges (one group for ds2/ds3, a few for ds1), so that
        # locate() bins every point with one searchsorted per group, not one per layer.
        distinct = sorted({e for e in self.r_edges if e})
        group_of_layer = np.array([distinct.index(e) if e else -1 for e in self.r_edges], dtype=np.int64)
        return _readonly(group_of_layer), tuple(np.asarray(e, dtype=np.float64) for e in distinct)

    def locate(self, layer, alpha: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Voxel number of points given by layer, angle (rad) and radius (mm); -1 outside.

        A point is outside when its layer has no voxels or its radius is below the first or at
        or beyond the last edge of its layer. Angles are wrapped into ``[-pi, pi)``. Float32
        inputs are binned in float32 (the shower generator relies on that for speed).
        """
        layer = np.asarray(layer, dtype=np.int64)
        alpha, r = np.asarray(alpha), np.asarray(r)
        group_of_layer, groups = self._edge_groups
        ok = (layer >= 0) & (layer < self.n_layers)
        lay = np.where(ok, layer, 0)
        group = group_of_layer[lay]
        ok &= group >= 0
        if len(groups) == 1:
            r_bin = np.searchsorted(groups[0], r, side="right") - 1
        else:
            r_bin = np.full(r.shape, -1, dtype=np.int64)
            for g, edges in enumerate(groups):
                sel = ok & (group == g)
                r_bin[sel] = np.searchsorted(edges, r[sel], side="right") - 1
        n_r = self.n_r[lay]
        ok &= (r_bin >= 0) & (r_bin < n_r)
        n_a = np.asarray(self.n_alpha, dtype=np.int64)[lay]
        two_pi = alpha.dtype.type(2 * np.pi) if alpha.dtype.kind == "f" else 2 * np.pi
        wrapped = np.mod(alpha + two_pi / 2, two_pi)
        a_bin = np.minimum((wrapped * (n_a / two_pi)).astype(np.int64), n_a - 1)
        index = self.layer_offsets[lay] + a_bin * n_r + r_bin
        return np.where(ok, index, -1)


@functools.lru_cache(maxsize=None)
def _load(name: str) -> CaloGeometry:
    path = resources.files("pcdata.geometry").joinpath("data", _XML_FILES[name])
    with resources.as_file(path) as p:
        return CaloGeometry.from_xml(p, name=name)


def get_geometry(name: GeometryName | str | CaloGeometry) -> CaloGeometry:
    """The CaloChallenge geometry of that name (a :class:`CaloGeometry` is returned as is).

    Args:
        name: ``ds1-photons``, ``ds1-pions``, ``ds2`` or ``ds3``.

    Raises:
        ValueError: an unknown name.
    """
    if isinstance(name, CaloGeometry):
        return name
    if name not in _XML_FILES:
        raise ValueError(f"unknown calorimeter geometry {name!r}: expected one of {', '.join(GEOMETRY_NAMES)}")
    return _load(name)
