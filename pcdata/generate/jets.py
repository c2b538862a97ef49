"""Jets from Pythia 8 + FastJet, written in the JetNet HDF5 layout.

The recipe follows JetNet's: proton-proton collisions at 13 TeV with a hard-process pT window
near 1 TeV, the visible hadron-level final state clustered with anti-kT R = 0.8, jets in
``|eta| < 2.5`` and a pT window, each jet matched to the hard particle it is named after (top
quark, W or Z boson, or the outgoing QCD parton), constituents sorted by pT and truncated or
zero-padded to 30 or 150. Relative coordinates come from :mod:`pcdata.geometry.jets`.

JetNet's classes are g, q, t, w, z: a QCD jet is tagged by the flavour of the outgoing parton
of the hard process nearest to it (Delta R, as every jet is matched), so ``process="g"`` keeps
gluon jets and ``process="q"`` light-quark (u, d, s) jets, each from the QCD 2 -> 2 processes
that give such a parton; ``"qcd"`` keeps every jet of HardQCD:all (both, and c, b). The file records its JetNet class in the root attribute
``jet_class`` (``"t"`` for ``top``; none for the mixed ``qcd``), which the JetNet reader uses.

Reproducibility: the jets are produced in fixed partitions of ``config.jets_per_partition`` jets.
Partition ``k`` runs its own Pythia seeded from ``(seed, k)`` only and keeps the first jets it
finds, and partitions are written in order, so the same ``seed``, ``num_jets`` and config give a
bit-identical file with any number of worker processes.

Example:
    >>> generate_jets("t30.hdf5", process="top", num_jets=1000, seed=1, workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, get_args

import numpy as np

from ..errors import GenerateError
from ..geometry.jets import delta_r, pxpypze_to_ptetaphim, to_relative
from ..sources.jetnet import JetNetWriter

__all__ = ["Process", "PROCESSES", "JET_CLASS", "NUM_PARTICLES", "JetGenConfig", "generate_jets", "partition_seed"]

Process = Literal["top", "g", "q", "qcd", "w", "z"]
PROCESSES: tuple[str, ...] = get_args(Process)
NUM_PARTICLES = (30, 150)

# Pythia takes seeds in 1..900000000 (0 would mean "seed from the clock").
_MAX_PYTHIA_SEED = 900_000_000
# Events generated between two clusterings: FastJet's multi-event interface amortises its
# per-call cost over the batch; a partition overshoots by at most this many events.
_EVENTS_PER_BATCH = 16

_PROCESS_SETTINGS: dict[str, tuple[str, ...]] = {
    "top": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", "24:onMode = off", "24:onIfAny = 1 2 3 4 5"),
    "qcd": ("HardQCD:all = on",),
    # Only the 2 -> 2 processes with an outgoing gluon (g) or light quark (q): each jet is still
    # tagged by its own parton, but fewer events are thrown away (HardQCD:all gave 1/3 the rate).
    "g": ("HardQCD:gg2gg = on", "HardQCD:qg2qg = on", "HardQCD:qqbar2gg = on"),
    "q": ("HardQCD:qg2qg = on", "HardQCD:qq2qq = on", "HardQCD:qqbar2qqbarNew = on", "HardQCD:gg2qqbar = on"),
    "w": (
        "WeakBosonAndParton:qqbar2Wg = on", "WeakBosonAndParton:qg2Wq = on",
        "24:onMode = off", "24:onIfAny = 1 2 3 4 5",
    ),
    # gmZmode = 2: the Z alone, without the gamma* part that would add low-mass "bosons".
    "z": (
        "WeakBosonAndParton:qqbar2gmZg = on", "WeakBosonAndParton:qg2gmZq = on", "WeakZ0:gmZmode = 2",
        "23:onMode = off", "23:onIfAny = 1 2 3 4 5",
    ),
}
_PARTONS = frozenset({1, 2, 3, 4, 5, 21})
# The hard-process particles a jet may be matched to (|PDG id|): the nearest one not taken by a
# harder jet names the jet's origin ...
_TARGETS: dict[str, frozenset[int]] = {
    "top": frozenset({6}), "w": frozenset({24}), "z": frozenset({23}), "qcd": _PARTONS, "g": _PARTONS, "q": _PARTONS,
}
# ... and the jet is kept when that origin is one of these (the sample's flavour).
_KEEP: dict[str, frozenset[int]] = {**_TARGETS, "g": frozenset({21}), "q": frozenset({1, 2, 3})}
#: The JetNet class each process's jets belong to, written into the file (none for mixed QCD).
JET_CLASS: dict[str, str | None] = {"top": "t", "g": "g", "q": "q", "qcd": None, "w": "w", "z": "z"}


@dataclass(frozen=True)
class JetGenConfig:
    """Physics and partitioning settings of the jet generator (defaults: JetNet-like).

    Attributes:
        sqrt_s: collision energy in GeV (13000).
        pthat_min, pthat_max: hard-process pT window in GeV (950, 1150).
        jet_radius: anti-kT distance parameter (0.8).
        jet_pt_min, jet_pt_max: accepted jet pT window in GeV (800, 1600).
        jet_eta_max: accepted jet ``|eta|`` (2.5).
        match_radius: largest Delta R between the jet axis and its hard particle (0.8); for
            top, W and Z the decay quarks must also lie within ``jet_radius`` of the axis.
        jets_per_partition: jets per independently seeded partition (500). Part of the
            output's identity: change it and the same seed gives other jets.
    """

    sqrt_s: float = 13000.0
    pthat_min: float = 950.0
    pthat_max: float = 1150.0
    jet_radius: float = 0.8
    jet_pt_min: float = 800.0
    jet_pt_max: float = 1600.0
    jet_eta_max: float = 2.5
    match_radius: float = 0.8
    jets_per_partition: int = 500

    def __post_init__(self) -> None:
        for name in ("sqrt_s", "pthat_min", "jet_radius", "jet_pt_min", "jet_eta_max", "match_radius"):
            if not getattr(self, name) > 0:
                raise GenerateError(f"JetGenConfig.{name}: must be > 0, got {getattr(self, name)!r}")
        if not self.pthat_max > self.pthat_min:
            raise GenerateError(f"JetGenConfig: pthat_max ({self.pthat_max}) must exceed pthat_min ({self.pthat_min})")
        if not self.jet_pt_max > self.jet_pt_min:
            raise GenerateError(f"JetGenConfig: jet_pt_max ({self.jet_pt_max}) must exceed jet_pt_min ({self.jet_pt_min})")
        if int(self.jets_per_partition) != self.jets_per_partition or self.jets_per_partition < 1:
            raise GenerateError(f"JetGenConfig.jets_per_partition: must be an integer >= 1, got {self.jets_per_partition!r}")

    def pythia_settings(self, process: str, pythia_seed: int) -> list[str]:
        """The Pythia ``readString`` lines for ``process`` with seed ``pythia_seed`` (1..9e8)."""
        return [
            f"Beams:eCM = {self.sqrt_s}",
            *_PROCESS_SETTINGS[process],
            f"PhaseSpace:pTHatMin = {self.pthat_min}",
            f"PhaseSpace:pTHatMax = {self.pthat_max}",
            # Workers share the terminal: no banners, event listings or per-event error lines.
            "Print:quiet = on",
            "Print:errors = off",
            "Next:numberShowEvent = 0",
            "Random:setSeed = on",
            f"Random:seed = {pythia_seed}",
        ]


def partition_seed(seed: int, index: int) -> int:
    """The Pythia seed of partition ``index`` for the user seed ``seed``: depends on nothing else."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0]
    return int(state % _MAX_PYTHIA_SEED) + 1


# -- one partition (runs in a worker process) -----------------------------------------------------


def _hard_particles(event, process: str) -> list[tuple[float, float, list[tuple[float, float]], int]]:
    """``(eta, phi, decay quarks' (eta, phi), |PDG id|)`` of each target particle of the hard process.

    The outgoing particles of the hardest process sit right after the incoming partons (entries 3
    and 4, their mother1); the direction used is that of the last copy before the decay or
    branching, after the recoils of the shower.
    """
    targets = _TARGETS[process]
    out = []
    for i in range(5, min(event.size(), 12)):
        p = event[i]
        if p.mother1() != 3 or p.idAbs() not in targets or p.statusAbs() not in (22, 23):
            continue
        last = event[p.iBotCopyId()]
        quarks: list[tuple[float, float]] = []
        if p.idAbs() in (6, 23, 24):
            for d in last.daughterList():
                q = event[d]
                if q.idAbs() <= 5:
                    quarks.append((q.eta(), q.phi()))
                elif q.idAbs() == 24:  # t -> b W: follow the W to its quarks
                    w = event[q.iBotCopyId()]
                    quarks.extend((event[k].eta(), event[k].phi()) for k in w.daughterList() if event[k].idAbs() <= 5)
        out.append((last.eta(), last.phi(), quarks, p.idAbs()))
    return out


def _select_jets(events, jet_def, config: JetGenConfig, keep: frozenset[int] = _PARTONS | {6, 23, 24}
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cluster a batch of events; return ``(jet px,py,pz,E, constituents [k, 4])`` of the jets
    matched to a hard particle whose ``|PDG id|`` is in ``keep``."""
    import awkward as ak
    import fastjet

    counts = np.array([len(parts) for parts, _ in events])
    flat = np.concatenate([parts for parts, _ in events])
    particles = ak.unflatten(ak.zip({"px": flat[:, 0], "py": flat[:, 1], "pz": flat[:, 2], "E": flat[:, 3]}), counts)
    sequence = fastjet.ClusterSequence(particles, jet_def)
    jets = sequence.inclusive_jets(config.jet_pt_min)
    index = sequence.constituent_index(config.jet_pt_min)
    jets_per_event = ak.to_numpy(ak.num(jets, axis=1))
    jet_p4 = np.stack([ak.to_numpy(ak.flatten(jets[k])) for k in ("px", "py", "pz", "E")], axis=1).astype(np.float64)
    per_jet = ak.flatten(index, axis=1)
    jet_offsets = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(per_jet, axis=1)))])
    flat_index = ak.to_numpy(ak.flatten(per_jet)).astype(np.int64)
    jet_pt, jet_eta, jet_phi, _ = pxpypze_to_ptetaphim(*jet_p4.T)

    selected = []
    first = 0
    for (parts, hard), n in zip(events, jets_per_event):
        js = np.arange(first, first + n)
        first += n
        js = js[(jet_pt[js] < config.jet_pt_max) & (np.abs(jet_eta[js]) < config.jet_eta_max)]
        used: set[int] = set()
        for j in js[np.argsort(-jet_pt[js], kind="stable")]:
            # Nearest hard particle not yet taken by a harder jet.
            dr = [delta_r(jet_eta[j], jet_phi[j], eta, phi) if h not in used else np.inf
                  for h, (eta, phi, _, _) in enumerate(hard)]
            if not dr or min(dr) >= config.match_radius:
                continue
            h = int(np.argmin(dr))
            used.add(h)
            if hard[h][3] not in keep:
                continue  # a QCD jet of the other flavour
            if any(delta_r(jet_eta[j], jet_phi[j], qe, qp) >= config.jet_radius for qe, qp in hard[h][2]):
                continue
            selected.append((jet_p4[j], parts[flat_index[jet_offsets[j]: jet_offsets[j + 1]]]))
    return selected


def _to_jetnet(jets, num_particles: int) -> tuple[np.ndarray, np.ndarray]:
    """Matched jets as JetNet arrays: ``particle_features [n, P, 4]``, ``jet_features [n, 4]``."""
    n = len(jets)
    p4 = np.zeros((4, n, num_particles))
    mask = np.zeros((n, num_particles), dtype=bool)
    multiplicity = np.zeros(n)
    for i, (_, parts) in enumerate(jets):
        order = np.argsort(-np.hypot(parts[:, 0], parts[:, 1]), kind="stable")[:num_particles]
        p4[:, i, : len(order)] = parts[order].T
        mask[i, : len(order)] = True
        multiplicity[i] = len(parts)  # before truncation, as in JetNet
    jet_pt, jet_eta, jet_phi, jet_mass = pxpypze_to_ptetaphim(*np.array([j for j, _ in jets]).reshape(n, 4).T)
    pt, eta, phi, _ = pxpypze_to_ptetaphim(*p4, mask=mask)
    etarel, phirel, ptrel = to_relative(pt, eta, phi, jet_pt, jet_eta, jet_phi, mask)
    particle_features = np.stack([etarel, phirel, ptrel, mask], axis=-1).astype(np.float32)
    jet_features = np.stack([jet_pt, jet_eta, jet_mass, multiplicity], axis=-1).astype(np.float32)
    return particle_features, jet_features


def _matched_jets(process: str, pythia_seed: int, config: JetGenConfig, limit: int) -> Iterator[tuple]:
    """Matched jets of one seeded Pythia run, in event order, as ``(jet p4, constituents [k, 4])``
    with Cartesian ``(px, py, pz, E)`` four-vectors in GeV (float64). The jet's four-vector is the
    FastJet E-scheme sum of its constituents.

    ``limit`` is the number of jets the caller wants, only to bound the number of events tried.
    """
    import fastjet
    import pythia8mc

    # FastJet prints its banner on stdout at the first clustering; workers must stay quiet.
    fastjet._swig.ClusterSequence.set_fastjet_banner_stream(None)
    pythia = pythia8mc.Pythia("", False)
    for line in config.pythia_settings(process, pythia_seed):
        if not pythia.readString(line):
            raise GenerateError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise GenerateError(f"Pythia failed to initialise for process {process!r}")
    jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, config.jet_radius)

    # Every process gives about one matched jet per event or more with the default windows; far
    # fewer means the windows exclude each other (e.g. jet pT above the pTHat window): stop
    # instead of looping for ever.
    max_events = 1000 + 100 * limit
    n_events = n_jets = 0
    while True:
        if n_events >= max_events:
            raise GenerateError(
                f"process {process!r}: only {n_jets} matched jets in {n_events} events; "
                "check the pT windows of the JetGenConfig"
            )
        events = []
        for _ in range(_EVENTS_PER_BATCH):
            n_events += 1
            if not pythia.next():  # a rare failed event: skip it (deterministically)
                continue
            event = pythia.event
            hard = _hard_particles(event, process)
            if not hard:
                continue
            parts = [(p.px(), p.py(), p.pz(), p.e()) for p in event if p.isFinal() and p.isVisible()]
            events.append((np.array(parts, dtype=np.float64).reshape(-1, 4), hard))
        if events:
            for jet in _select_jets(events, jet_def, config, _KEEP[process]):
                n_jets += 1
                yield jet


def _generate_partition(
    process: str, num_jets: int, num_particles: int, pythia_seed: int, config: JetGenConfig, on_jets=None
):
    """One partition: the first ``num_jets`` matched jets of a Pythia run seeded ``pythia_seed``.

    ``on_jets(n)``, if given, is called as jets are found (in-process runs: a smooth progress bar).

    Returns:
        ``(particle_features, jet_features)`` in the JetNet layout, float32.
    """
    jets = []
    for jet in itertools.islice(_matched_jets(process, pythia_seed, config, num_jets), num_jets):
        jets.append(jet)
        if on_jets is not None and len(jets) % 10 == 0:
            on_jets(10)
    if on_jets is not None and len(jets) % 10:
        on_jets(len(jets) % 10)
    return _to_jetnet(jets, num_particles)


# -- the public entry point -----------------------------------------------------------------------


def _check_args(out, process, num_jets, num_particles, seed, workers) -> Path:
    if process not in PROCESSES:
        raise GenerateError(f"process: expected one of {', '.join(PROCESSES)}, got {process!r}")
    if isinstance(num_particles, bool) or num_particles not in NUM_PARTICLES:
        raise GenerateError(f"num_particles: expected 30 or 150 (the JetNet sizes), got {num_particles!r}")
    for name, value, low in (("num_jets", num_jets, 1), ("seed", seed, 0), ("workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise GenerateError(f"{name}: expected an integer >= {low}, got {value!r}")
    out = Path(out)
    if out.is_dir():
        raise GenerateError(f"{out}: is a directory, expected an output file name such as t30.hdf5")
    if not out.parent.is_dir():
        raise GenerateError(f"{out}: directory {out.parent} does not exist")
    return out


def generate_jets(
    out: str | os.PathLike,
    *,
    process: Process,
    num_jets: int,
    num_particles: int = 30,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
    config: JetGenConfig | None = None,
) -> Path:
    """Generate jets with Pythia 8 + FastJet and write them as a JetNet HDF5 file (atomically).

    Args:
        out: output file; replaced if it exists. Its JetNet class is written into it (attribute
            ``jet_class``), so any name ingests.
        process: ``"top"`` (hadronic tops), ``"g"`` (gluon jets), ``"q"`` (light-quark jets),
            ``"qcd"`` (both, and c, b: all jets of HardQCD:all), ``"w"`` or ``"z"`` (hadronic bosons).
        num_jets: number of jets to write (>= 1).
        num_particles: constituents kept per jet, 30 or 150 (default 30); ``num_particles`` in
            ``jet_features`` is the multiplicity before truncation.
        seed: non-negative integer seed (default 0); with ``num_jets`` and ``config`` it fixes the
            file bit for bit whatever ``workers`` is.
        workers: worker processes (default 1: generate in this process).
        progress: show a progress bar with the rate on stderr (default True).
        config: physics and partitioning settings (default :class:`JetGenConfig`).

    Returns:
        The path of the written file.

    Raises:
        GenerateError: bad arguments, or a config whose windows give no jets.
    """
    out = _check_args(out, process, num_jets, num_particles, seed, workers)
    config = config or JetGenConfig()
    size = int(config.jets_per_partition)
    starts = list(range(0, int(num_jets), size))
    tasks = [
        (process, min(size, num_jets - start), int(num_particles), partition_seed(seed, k), config)
        for k, start in enumerate(starts)
    ]
    workers = min(int(workers), len(tasks))

    attrs = {"generator": "pcdata generate jets (Pythia 8 + FastJet)", "process": process}
    if JET_CLASS[process] is not None:
        attrs["jet_class"] = JET_CLASS[process]
    with JetNetWriter(out, n_jets=int(num_jets), num_particles=int(num_particles), attrs=attrs) as writer, \
            _Progress(enabled=progress, total=int(num_jets), label=f"{process} jets") as bar:
        if workers == 1:
            for start, task in zip(starts, tasks):
                pf, jf = _generate_partition(*task, on_jets=bar.advance)
                writer.write(start, pf, jf)
        else:
            _run_pool(tasks, starts, workers, writer, bar)
    return out


def _run_pool(tasks, starts, workers: int, writer: JetNetWriter, bar: "_Progress") -> None:
    """Run partitions in spawned processes; write them strictly in partition order.

    Writing in order (buffering partitions that finish early) keeps the HDF5 chunk layout, and so
    the file's bytes, independent of which worker finishes first.
    """
    # spawn: no fork of a parent that may hold threads (Dask, torch) or an open HDF5 file.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        futures = [pool.submit(_generate_partition, *task) for task in tasks]
        index = {f: k for k, f in enumerate(futures)}
        done: dict[int, tuple] = {}
        next_k, pending = 0, set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                pf, jf = f.result()
                done[index[f]] = (pf, jf)
                bar.advance(len(jf))
            while next_k in done:
                pf, jf = done.pop(next_k)
                writer.write(starts[next_k], pf, jf)
                next_k += 1
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class _Progress:
    """A rich progress bar on stderr with the rate in jets/s, or nothing when disabled."""

    def __init__(self, *, enabled: bool, total: int, label: str) -> None:
        self.enabled, self.total, self.label = enabled, total, label

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            rate = TextColumn("{task.fields[rate]}")
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), rate,
                TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total, rate="")
        return self

    def advance(self, n: int) -> None:
        if self.enabled:
            self._bar.advance(self._task, n)
            task = self._bar.tasks[0]
            elapsed = task.elapsed or 0.0
            # The mean rate since the start: partitions finish in bursts, so a windowed speed jumps.
            rate = task.completed / elapsed if elapsed > 0 else math.nan
            self._bar.update(self._task, rate=f"{rate:.0f} jets/s" if math.isfinite(rate) else "")

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)
