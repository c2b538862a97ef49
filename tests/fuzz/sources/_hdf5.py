"""Mutated HDF5 files: valid arrays changed in values, dtypes and shapes, then written, and
optionally damaged at the byte level (truncated, bits flipped)."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import strategies as st

SPECIAL = (np.nan, np.inf, -np.inf, -0.0, -1.0, 0.5, 1.5, 1e30, -1e30, 3e38, 1e300, 2.0**31, 2.0**24 + 1, 1e-45)
DTYPES = ("f2", "f4", "f8", "i1", "i4", "u8", "?", "c8", "S4")


@st.composite
def array_edits(draw, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    """1..4 edits of ``arrays`` (a dict of name -> array, edited copies returned; None: dropped)."""
    out = {k: v.copy() for k, v in arrays.items()}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # the edits themselves overflow and drop imaginary parts on purpose
        for _ in range(draw(st.integers(1, 4))):
            _edit(draw, out)
    return out


def _edit(draw, out: dict) -> None:
    name = draw(st.sampled_from(sorted(out)))
    a = out[name]
    if a is None or a.ndim == 0:
        return
    if a.dtype.kind in "SUO":  # text: only shape edits and drops below make sense
        a = np.zeros(a.shape, np.float32)
    op = draw(st.sampled_from(["value", "value", "value", "column", "dtype", "shape", "zero", "drop", "scalar"]))
    if op == "value" and a.size:
        idx = tuple(draw(st.integers(0, n - 1)) for n in a.shape)
        a = a.astype(np.float64) if a.dtype.kind != "f" else a
        a[idx] = draw(st.sampled_from(SPECIAL) | st.floats(allow_nan=True, allow_infinity=True))
    elif op == "column" and a.ndim >= 2 and a.size:
        # one feature of every row (a whole mask or num_particles column, say) to one value
        col = draw(st.integers(0, a.shape[-1] - 1))
        a = a.astype(np.float64)
        a[..., col] = draw(st.sampled_from(SPECIAL + (0.0, 1.0, 2.0)))
    elif op == "dtype":
        with np.errstate(all="ignore"):
            a = a.astype(draw(st.sampled_from(DTYPES)))
    elif op == "shape":
        choice = draw(st.sampled_from(["flatten", "add-axis", "drop-row", "drop-col", "transpose"]))
        if choice == "flatten":
            a = a.reshape(-1)
        elif choice == "add-axis":
            a = a[..., None]
        elif choice == "drop-row" and a.shape[0]:
            a = a[1:]
        elif choice == "drop-col" and a.ndim >= 2 and a.shape[1]:
            a = a[:, 1:]
        elif choice == "transpose":
            a = a.T.copy()
    elif op == "zero":
        axis = draw(st.integers(0, a.ndim - 1)) if a.ndim else 0
        a = np.take(a, np.array([], np.intp), axis=axis) if a.ndim else a
    elif op == "drop":
        a = None
    elif op == "scalar":
        a = np.asarray(draw(st.sampled_from(SPECIAL)))
    out[name] = a


def write_hdf5(path, arrays: dict[str, np.ndarray | None], *, chunked: bool, attrs: dict | None = None) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if v is None:
                continue
            opts = {"chunks": True, "compression": "gzip"} if chunked and v.ndim and v.size else {}
            f.create_dataset(k, data=v, **opts)
        f.attrs.update(attrs or {})


@st.composite
def byte_damage(draw, data: bytes) -> bytes:
    """The file cut short, or with a few bits flipped (anywhere: header, B-tree, chunks)."""
    if draw(st.booleans()):
        return data[: draw(st.integers(0, len(data) - 1))]
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        # Half the flips in the first 2 kB (superblock, object headers), half anywhere.
        hi = min(len(buf), 2048) if draw(st.booleans()) else len(buf)
        buf[draw(st.integers(0, hi - 1))] ^= 1 << draw(st.integers(0, 7))
    return bytes(buf)
