"""Shared builders for the tests: small valid input files and stores made on the spot."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np

from pcdata.sources.jetnet import write_jetnet_hdf5

__all__ = ["synthetic_jetnet_arrays", "make_jetnet_file", "write_root", "write_rntuple"]


def synthetic_jetnet_arrays(n_jets: int, num_particles: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Layout-valid JetNet arrays with jet-like shapes (not physics: for format and pipeline tests).

    Multiplicities span 1..~2P so some jets are truncated (num_particles > P), particles are sorted
    by descending ptrel, padding is zero.
    """
    rng = np.random.default_rng(seed)
    total = rng.integers(1, 2 * num_particles, size=n_jets)
    kept = np.minimum(total, num_particles)
    pf = np.zeros((n_jets, num_particles, 4), dtype=np.float32)
    mask = np.arange(num_particles)[None, :] < kept[:, None]
    pt = rng.exponential(1.0, size=(n_jets, num_particles)) * mask
    pt = -np.sort(-pt, axis=1)
    pt /= np.maximum(pt.sum(axis=1, keepdims=True), 1e-9) * 1.05
    pf[..., 0] = rng.normal(0, 0.1, size=(n_jets, num_particles)) * mask
    pf[..., 1] = rng.normal(0, 0.1, size=(n_jets, num_particles)) * mask
    pf[..., 2] = pt
    pf[..., 3] = mask
    jf = np.stack([rng.normal(1000, 50, n_jets), rng.uniform(-2, 2, n_jets), rng.normal(150, 30, n_jets), total], axis=1)
    return pf, jf.astype(np.float32)


def make_jetnet_file(path: str | Path, n_jets: int, num_particles: int = 30, seed: int = 0) -> Path:
    """Write a synthetic JetNet-layout file and return its path."""
    pf, jf = synthetic_jetnet_arrays(n_jets, num_particles, seed)
    write_jetnet_hdf5(path, pf, jf)
    return Path(path)


def jetclass_arrays(pf: np.ndarray, jf: np.ndarray, seed: int = 0, labels: int = 3) -> dict:
    """JetClass-layout branches (absolute four-vectors, massless constituents) from JetNet arrays.

    The jet axis is (jet pt, jet eta, a random phi); each jet gets a one-hot ``label_*``.
    """
    import awkward as ak

    from pcdata.geometry.jets import energy_from_mass, ptetaphim_to_pxpypze, to_absolute

    rng = np.random.default_rng(seed)
    mask = pf[..., 3] == 1
    jet_phi = rng.uniform(-np.pi, np.pi, len(jf))
    pt, eta, phi = to_absolute(pf[..., 0].astype(np.float64), pf[..., 1].astype(np.float64), pf[..., 2].astype(np.float64),
                               jf[:, 0].astype(np.float64), jf[:, 1].astype(np.float64), jet_phi, mask=mask)
    px, py, pz, e = ptetaphim_to_pxpypze(pt, eta, phi, np.zeros_like(pt), mask=mask)
    counts = mask.sum(1)
    jag = lambda a: ak.unflatten(a[mask].astype(np.float32), counts)  # noqa: E731
    cls = rng.integers(0, labels, len(jf))
    out = {
        "part_px": jag(px), "part_py": jag(py), "part_pz": jag(pz), "part_energy": jag(e),
        "jet_pt": jf[:, 0].astype(np.float32), "jet_eta": jf[:, 1].astype(np.float32),
        "jet_phi": jet_phi.astype(np.float32),
        "jet_energy": energy_from_mass(jf[:, 0].astype(np.float64), jf[:, 1].astype(np.float64), jf[:, 2].astype(np.float64)).astype(np.float32),
        "jet_nparticles": counts.astype(np.float32),
    }
    for k in range(labels):
        out[f"label_{'QCD Tbqq Wqq'.split()[k] if k < 3 else k}"] = (cls == k)
    return out


def write_root(path: str | Path, tree: str, branches: dict, *, baskets: int = 1) -> Path:
    """Write a TTree with uproot (jagged branches get uproot's counter branch ``n<name>``), in
    ``baskets`` extend calls so that the file has several baskets per branch."""
    import awkward as ak
    import uproot

    n = len(next(iter(branches.values())))
    with uproot.recreate(path) as f:
        # mktree: a plain ``f[name] = dict`` writes an RNTuple in uproot >= 5.6, not a TTree.
        t = f.mktree(tree, {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in branches.items()})
        for lo in range(0, n, -(-n // baskets)):
            t.extend({k: v[lo : lo + -(-n // baskets)] for k, v in branches.items()})
    return Path(path)


def write_rntuple(path: str | Path, name: str, branches: dict, *, clusters: int = 1, rvec: bool = True) -> Path:
    """Write the same content as :func:`write_root` as an RNTuple, in ``clusters`` extend calls
    (uproot closes one cluster per call). A record array ``X`` becomes NanoAOD's flat fields
    ``nX`` (int32, as uproot's TTree counter) and ``X_<field>``, as ``write_root`` gets them.

    uproot names a jagged field ``std::vector<T>``; NanoAOD's are ``ROOT::VecOps::RVec<T>``, which
    RNTuple stores alike (an offset column and an item column), so with ``rvec`` the helper gives
    them that type name while uproot writes the header, and checks that it reads back."""
    import contextlib

    import awkward as ak
    import uproot
    import uproot.writing._cascadentuple as cascade

    flat: dict = {}
    for k, v in branches.items():
        if isinstance(v, ak.Array) and v.fields:
            flat[f"n{k}"] = np.asarray(ak.num(v, axis=1), dtype=np.int32)
            flat.update({f"{k}_{f}": v[f] for f in v.fields})
        else:
            flat[k] = v
    n = len(next(iter(flat.values())))
    original = cascade._cpp_typename  # an AttributeError here: uproot changed, see the docstring

    def named(akform, subcall=False):
        typename = original(akform, subcall)
        return "ROOT::VecOps::RVec<" + typename.removeprefix("std::vector<") if not subcall and typename.startswith("std::vector<") \
            and typename != "std::string" else typename

    with contextlib.ExitStack() as stack:
        if rvec:
            cascade._cpp_typename = named
            stack.callback(setattr, cascade, "_cpp_typename", original)
        with uproot.recreate(path) as f:
            step = -(-n // clusters)
            t = f.mkrntuple(name, {k: v[:step] for k, v in flat.items()})
            for lo in range(step, n, step):
                t.extend({k: v[lo : lo + step] for k, v in flat.items()})
    with uproot.open(path) as f:
        jagged = [k for k, v in flat.items() if isinstance(v, ak.Array) and v.ndim == 2]
        types = {f[name][k].typename for k in jagged}
        assert not rvec or all(t.startswith("ROOT::VecOps::RVec<") for t in types), types
    return Path(path)


@contextlib.contextmanager
def serve_http(handler) -> Iterator[str]:
    """Run a ThreadingHTTPServer with ``handler`` on 127.0.0.1 (a free port) in a thread for the
    block; yields its base URL (the test servers of downloads and remote inputs)."""
    import threading
    from http.server import ThreadingHTTPServer

    class Server(ThreadingHTTPServer):
        # Keep-alive connections outlive shutdown() in their handler threads: a client's pooled
        # connection to this port would reach them when a later server gets the same port.
        daemon_threads = True
        open_sockets: set = set()

        def process_request(self, request, client_address):
            self.open_sockets.add(request)
            super().process_request(request, client_address)

    httpd = Server(("127.0.0.1", 0), handler)
    httpd.open_sockets = set()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        import socket

        for sock in list(httpd.open_sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass
        thread.join(5)
