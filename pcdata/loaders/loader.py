"""The streaming loader: :class:`PointCloudLoader`, one store to padded torch batches.

The global order of an epoch is defined first (:mod:`.order`), then each rank and worker
process produces its own share of the batches (:mod:`.window`), so the stream is the same for any
number of ranks and workers, and a small state dict (epoch, seed, batches consumed) resumes it
mid-epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch

from ..catalog.shared import open_named_store as open_store  # a path or a catalog name
from ..store.reader import Store
from .order import METHOD, EpochPlan, Layout, Round, ShuffleOptions, fragment_blocks, hash_seed, share
from .transforms import BindContext, Compose, Transform
from .window import RingReader, pad_batch
from .workers import WorkerPool
from .world import detect_ranks

__all__ = ["PointCloudLoader", "WorkerOptions"]

_MASK63 = (1 << 63) - 1
_FIRST_ROUND = 2  # batches read before the rest of the first round (latency to the first batch)


@dataclass(frozen=True)
class WorkerOptions:
    """How worker processes run (with ``num_workers > 0``; see :mod:`.workers`).

    Attributes:
        prefetch: batches each worker prepares ahead (its shared-memory slots, less one).
        pin_memory: copy batches into pinned memory, for fast host-to-GPU transfer.
        start_method: ``fork`` (fast to start; the default on Linux), ``spawn`` or ``forkserver``;
            None: the platform's default.
        timeout: seconds to wait for a worker's batch before failing (0: forever).
    """

    prefetch: int = 2
    pin_memory: bool = False
    start_method: Literal["fork", "spawn", "forkserver"] | None = None
    timeout: float = 0.0

    def __post_init__(self) -> None:
        if self.prefetch < 1:
            raise ValueError(f"WorkerOptions.prefetch must be >= 1, got {self.prefetch}")


@dataclass(frozen=True)
class _Spec:
    """Everything that defines the stream; small and picklable, sent to every worker."""

    path: str
    allow_incomplete: bool
    split: str | None
    batch_size: int
    shuffle: bool
    seed: int
    pad: int | None
    features: tuple[str, ...]
    fields: tuple[str, ...]
    drop_last: bool
    options: ShuffleOptions
    rank: int
    world_size: int
    cache: bool = False
    transforms: Compose | None = None


class _Source:
    """A process's view of the store: blocks, selection counts, and the plan of the current epoch.

    Nothing here grows with the number of clouds: per-cloud facts (offsets, fields, whether a
    cloud is in the split) are read or computed for the clouds of one round at a time, from the
    fragments they lie in (the store keeps a bounded number of fragments' offsets and fields).
    """

    def __init__(self, spec: _Spec, store: Store | None = None):
        self.spec = spec
        self.store = store or open_store(spec.path, allow_incomplete=spec.allow_incomplete)
        s = self.store
        member = None
        if spec.split is not None:
            s.in_split(np.zeros(0, np.int64), spec.split)  # an unknown split fails here
            member = partial(s.in_split, name=spec.split)
        block = spec.options.block_clouds
        if block is None:  # four points chunks' worth at the mean multiplicity
            block = max(1, round(4 * s.meta.layout.points_rows * s.num_clouds / max(1, s.num_points)))
        self.layout = Layout.build(fragment_blocks(s.fragment_starts, block), member)
        names = s.point_features
        self.columns = None if spec.features == names else np.array([names.index(f) for f in spec.features])
        self._plan: EpochPlan | None = None
        self._rows: np.ndarray | None = None
        self._ring: np.ndarray | None = None  # the reader's ring, kept from round to round
        self._mapped: tuple | None | bool = False  # False: not tried yet

    @property
    def num_clouds(self) -> int:
        return self.layout.num_clouds

    def mapped_rows(self) -> tuple | None:
        """``(rows, shift, mapping)`` when the store's raw chunks can be mapped (all features
        loaded): batches then gather straight from the page cache, with nothing to decode."""
        if self._mapped is False:
            self._mapped = self.store.map_points() if self.columns is None else None
        return self._mapped

    def cached_rows(self) -> np.ndarray:
        """Every point of the store (the loaded features), decoded once and kept."""
        if self._rows is None:
            s = self.store
            if self.columns is None:
                self._rows = s.read_points(0, s.num_points)
            else:  # a fragment at a time, so only the kept columns are ever held whole
                rows = np.empty((s.num_points, len(self.columns)), dtype=np.float32)
                for k in range(s.num_fragments):
                    a, b = s.point_starts[k], s.point_starts[k + 1]
                    rows[a:b] = s.read_points(a, b)[:, self.columns]
                self._rows = rows
        return self._rows

    def _counts(self, ids: np.ndarray) -> np.ndarray:
        return self.store.point_ranges(ids)[1]

    def plan(self, epoch: int) -> EpochPlan:
        if self._plan is None or self._plan.epoch != epoch:
            sp = self.spec
            self._plan = EpochPlan(self.layout, batch_size=sp.batch_size, shuffle=sp.shuffle, seed=sp.seed,
                                   epoch=epoch, options=sp.options, drop_last=sp.drop_last,
                                   world_size=sp.world_size, counts=self._counts)
        return self._plan

    def _batch(self, rows: np.ndarray, first_row: np.ndarray, counts: np.ndarray, table: np.ndarray,
               at: np.ndarray, ids: np.ndarray, pad: int | None) -> dict:
        points, mask, cloud, _ = pad_batch(rows, first_row, counts, pad, table, at)
        # index and counts wrap the fresh numpy arrays (no copy); points, mask and cloud are in
        # torch-allocated (64-byte aligned) memory, which DLPack consumers such as JAX take as is.
        return {"points": points, "mask": mask, "cloud": cloud, "index": torch.from_numpy(ids),
                "counts": torch.from_numpy(counts)}

    def _rounds(self, plan: EpochPlan, batch_ids: np.ndarray, readers: int) -> Iterator[np.ndarray]:
        """This worker's batches cut by round (consecutive global batch ranges); the first two
        batches of the iteration are a round of their own, so that the first batch waits for the
        offsets, fields and chunks of its own clouds only, not of a whole round's."""
        if not len(batch_ids):
            return
        r = batch_ids // plan.round_batches(readers)
        groups = np.split(batch_ids, np.flatnonzero(np.diff(r)) + 1)
        if len(groups[0]) > _FIRST_ROUND:
            groups[:1] = [groups[0][:_FIRST_ROUND], groups[0][_FIRST_ROUND:]]
        yield from groups

    def batches(self, epoch: int, batch_ids: np.ndarray, readers: int) -> Iterator[dict]:
        """The given global batches of ``epoch``, in order, read a round at a time."""
        sp, plan, s = self.spec, self.plan(epoch), self.store
        for group in self._rounds(plan, batch_ids, readers):
            rd = plan.round(group)
            starts, counts = s.point_ranges(rd.seq)
            table = s.fields_of(rd.seq, sp.fields)
            for k, rows, first_row, pos in self._positions(rd, group, starts, counts):
                batch = self._batch(rows, first_row, counts[pos], table, pos, rd.seq[pos], sp.pad)
                if sp.transforms is not None:
                    # Randomness (dequantisation noise) is named by (seed, epoch, batch), not by worker.
                    gen = torch.Generator().manual_seed(hash_seed(sp.seed, epoch, k, 4) & _MASK63)
                    batch = sp.transforms.forward(batch, gen)
                yield batch

    def _positions(self, rd: Round, group: np.ndarray, starts: np.ndarray, counts: np.ndarray
                   ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """(global batch, rows, first row of each cloud, positions into ``rd.seq``) per batch."""
        # Every point already addressable (decoded and kept, or mapped raw chunks): index it.
        mapped = None if self.spec.cache else self.mapped_rows()
        if self.spec.cache or mapped is not None:
            if mapped is None:
                rows, first = self.cached_rows(), starts
            else:
                frag = np.searchsorted(self.store.fragment_starts, rd.seq, side="right") - 1
                rows, first = mapped[0], starts + mapped[1][frag]
            for t, k in enumerate(group):
                pos = rd.batch(t)
                yield int(k), rows, first[pos], pos
            return
        # Take the ring while streaming, so that a second iterator running at the same time gets its own.
        ring, self._ring = self._ring, None
        reader = RingReader(rd, np.arange(len(group)), starts, counts, self.store.read_points,
                            len(self.store.point_features), self.columns, rows=ring)
        try:
            for t, pos in reader:
                yield int(group[t]), reader.rows, reader.first_row[pos], pos
        finally:
            self._ring = reader.rows

    def sample(self, max_clouds: int = 4096) -> dict:
        """Raw batch of up to ``max_clouds`` clouds spread evenly over the selection (for binding);
        fewer (not under 256) where the padded batch would pass 2**25 points (long showers)."""
        n = self.num_clouds
        max_clouds = min(max_clouds, max(256, (1 << 25) // max(1, self.store.max_points)))
        # (select_at truncates the ranks to integers; an empty selection gives no ranks, no clouds)
        ids = self.layout.select_at(np.linspace(0, n - 1, num=min(max_clouds, n)))
        clouds = self.store.take(ids, fields=[])  # pragma: no mutate (the fields come from fields_of below; None reads them too)
        rows = clouds.points if self.columns is None else clouds.points[:, self.columns]
        table = self.store.fields_of(ids, self.spec.fields)
        return self._batch(rows, clouds.offsets[:-1], clouds.counts.astype(np.int64), table,
                           np.arange(len(ids)), ids, None)


class _Stream:
    """One epoch of one rank from batch ``start`` on; each worker takes its share."""

    def __init__(self, spec: _Spec, epoch: int, start: int, source: _Source | None):
        self.spec, self.epoch, self.start, self.source = spec, epoch, start, source

    def __getstate__(self) -> dict:
        # Workers started by spawn open the store themselves; fork shares the parent's source.
        return {**self.__dict__, "source": None}

    def __iter__(self) -> Iterator[dict]:
        return self.iter_share(0, 1)  # in-process; WorkerPool gives each worker its share

    def iter_share(self, worker: int, num_workers: int) -> Iterator[dict]:
        """The batches of one of ``num_workers`` workers reading this rank's stream."""
        if self.source is None:
            self.source = _Source(self.spec)
        plan = self.source.plan(self.epoch)
        ids = share(plan.num_batches, rank=self.spec.rank, world_size=self.spec.world_size, start=self.start,
                    worker=worker, num_workers=num_workers)
        yield from self.source.batches(self.epoch, ids, self.spec.world_size * num_workers)


def _pin(batch: dict) -> dict:
    return {k: v.pin_memory() for k, v in batch.items()}


def _parse_pad(pad: int | str) -> int | None:
    if pad == "batch":
        return None
    if isinstance(pad, (int, np.integer)) and not isinstance(pad, bool) and pad >= 1:
        return int(pad)
    raise ValueError(f"pad must be 'batch' or a number of points >= 1, got {pad!r}")


class PointCloudLoader:
    """Shuffled, padded torch batches streamed from a point-cloud store.

    Each batch is a dict of CPU tensors: ``points`` float32 ``[B, N, F]`` (zero where ``mask`` is
    False), ``mask`` bool ``[B, N]``, ``cloud`` float32 ``[B, C]`` (the cloud fields), ``index``
    int64 ``[B]`` (global cloud indices in the store) and ``counts`` int64 ``[B]`` (points per cloud
    before any truncation). Tensors live in torch's 64-byte aligned CPU memory and go to numpy or
    JAX through DLPack without a copy (:mod:`pcdata.loaders.dlpack`).

    For a given seed and epoch the global order of clouds is the same for any ``num_workers`` and
    any number of ranks; each rank yields global batches ``rank, rank + world_size, ...``. Every
    selected cloud comes exactly once per epoch (the last batch may be shorter unless
    ``drop_last``). Iterating again after a complete epoch starts the next epoch; after a partial
    one it continues where it stopped. :meth:`state_dict` / :meth:`load_state_dict` resume the
    identical stream in a new process.

    Args:
        store_or_path: a :class:`~pcdata.Store` or the path of one.
        split: a named split of the store (``train``, ``val``, ``test``), or None for every cloud.
        batch_size: clouds per batch (default 256).
        shuffle: shuffle blocks and within the buffer (default True); False streams in store order.
        seed: names the shuffle and the transforms' noise (default 0).
        num_workers: worker processes (default 0: read in this process, with a reader thread
            decoding beside it; workers pay off only when transforms are heavy and cores many).
        rank, world_size: this process among the training processes; default torch.distributed's
            when it is initialised, else ``RANK``/``WORLD_SIZE`` from the environment, else 0 of 1.
        pad: ``"batch"`` pads to the longest cloud of each batch; a number N pads to N and truncates
            longer clouds to their first N points (the hardest, for jets); see :attr:`points_truncated`.
        features: point features to load, in this order (default all).
        transforms: a :class:`~pcdata.loaders.transforms.Transform` or a list of them, bound here to
            the store's statistics; :attr:`transforms` holds the bound pipeline (``inverse``, ``to_dict``).
        drop_last: drop the last partial batch and as many full batches as needed for every rank to
            yield the same number (what DistributedDataParallel needs).
        fields: cloud fields in ``cloud``, in this order (default all).
        bucket: group clouds of similar multiplicity, sorting windows of this many batches (default
            None: off); cuts padding with ``pad="batch"``, keeps determinism and exactly-once.
        shuffle_options: buffer size, block size, lanes (:class:`ShuffleOptions`).
        worker_options: prefetch, pinned memory, start method (:class:`WorkerOptions`).
        cache: decode the store once and keep its points in memory, for stores that fit in RAM
            (default False: stream, holding only the shuffle window). Forked workers share the
            parent's copy when it was loaded before they start (:meth:`preload`).
        allow_incomplete: read the committed fragments of an interrupted ingest.

    Raises:
        KeyError: an unknown split, feature or field.
        ValueError: an invalid option.
    """

    def __init__(
        self,
        store_or_path: Store | str | os.PathLike,
        *,
        split: str | None = "train",
        batch_size: int = 256,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        pad: int | Literal["batch"] = "batch",
        features: Sequence[str] | None = None,
        transforms: Transform | Sequence[Transform] | None = None,
        drop_last: bool = False,
        fields: Sequence[str] | None = None,
        bucket: int | None = None,
        shuffle_options: ShuffleOptions | None = None,
        worker_options: WorkerOptions | None = None,
        cache: bool = False,
        allow_incomplete: bool = False,
    ):
        store = store_or_path if isinstance(store_or_path, Store) else open_store(store_or_path, allow_incomplete=allow_incomplete)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        features = tuple(store.point_features if features is None else features)
        fields = tuple(store.cloud_features if fields is None else fields)
        unknown = [f for f in features if f not in store.point_features]
        if unknown:
            raise KeyError(f"{store.path}: no point feature {unknown[0]!r} (has {', '.join(store.point_features)})")
        unknown = [f for f in fields if f not in store.cloud_features]
        if unknown:
            raise KeyError(f"{store.path}: no cloud field {unknown[0]!r} (has {', '.join(store.cloud_features)})")
        options = shuffle_options or ShuffleOptions()
        if bucket is not None:
            options = replace(options, bucket=bucket)
        rank, world_size = detect_ranks(rank, world_size)
        self._spec = _Spec(str(store.path), allow_incomplete or not store.complete, split, int(batch_size), bool(shuffle),
                           int(seed), _parse_pad(pad), features, fields, bool(drop_last), options, rank, world_size,
                           bool(cache))
        self._source = _Source(self._spec, store)  # validates the split
        self.store = store
        self.num_workers = int(num_workers)
        self.worker_options = worker_options or WorkerOptions()
        self.cloud_features: tuple[str, ...] = fields
        self.transforms: Compose | None = self._bind(transforms) if transforms is not None else None
        self._spec = replace(self._spec, transforms=self.transforms)
        self._source.spec = self._spec
        self._epoch, self._consumed = 0, 0
        self.points_truncated = 0

    def _bind(self, transforms: Transform | Sequence[Transform]) -> Compose:
        pipeline = Compose([transforms] if isinstance(transforms, Transform) else list(transforms))
        ctx = BindContext(self._spec.features, self._spec.fields, dict(self.store.stats), sample=self._source.sample)
        bound = pipeline.bind(ctx)
        self.cloud_features = ctx.cloud_features
        return bound

    # -- description ------------------------------------------------------------------------------
    @property
    def point_features(self) -> tuple[str, ...]:
        """Names of the columns of ``points``."""
        return self._spec.features

    @property
    def batch_size(self) -> int:
        return self._spec.batch_size

    @property
    def rank(self) -> int:
        return self._spec.rank

    @property
    def world_size(self) -> int:
        return self._spec.world_size

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def num_clouds(self) -> int:
        """Clouds of the selection (split) streamed per epoch, before ``drop_last``."""
        return self._source.num_clouds

    def preload(self) -> "PointCloudLoader":
        """With ``cache=True``, decode the store now (else at the first batch), so forked workers
        share this process's copy instead of each decoding their own. Returns the loader."""
        if self._spec.cache:
            self._source.cached_rows()
        return self

    def plan(self, epoch: int | None = None) -> EpochPlan:
        """The global plan of an epoch (default the current one): ``plan().clouds()`` is its order."""
        return self._source.plan(self._epoch if epoch is None else epoch)

    def __len__(self) -> int:
        """Batches this rank yields in a whole epoch."""
        return len(share(self.plan().num_batches, rank=self.rank, world_size=self.world_size))

    def __repr__(self) -> str:
        return (f"<PointCloudLoader {self._spec.path!r} split={self._spec.split} clouds={self.num_clouds} "
                f"batch_size={self.batch_size} rank={self.rank}/{self.world_size} workers={self.num_workers} "
                f"epoch={self._epoch}>")

    # -- epochs and resume ------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its beginning at the next iteration."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch, self._consumed = int(epoch), 0

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is: ``{epoch, seed, batches}`` (batches this rank has yielded in the epoch),
        plus what must match on resume."""
        return {"method": METHOD, "epoch": self._epoch, "seed": self._spec.seed, "batches": self._consumed,
                "batch_size": self.batch_size, "world_size": self.world_size, "split": self._spec.split,
                "num_clouds": self.num_clouds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream saved by :meth:`state_dict` (also with another number of workers,
        or of ranks when the batches consumed divide evenly).

        Raises:
            ValueError: the state describes another stream (seed, batch size, split or method).
        """
        for key, mine in (("method", METHOD), ("seed", self._spec.seed), ("batch_size", self.batch_size),
                          ("split", self._spec.split), ("num_clouds", self.num_clouds)):
            if key in state and state[key] != mine:
                raise ValueError(f"loader state is for {key}={state[key]!r}, this loader has {key}={mine!r}")
        batches, size = int(state["batches"]), int(state.get("world_size", self.world_size))
        if (batches * size) % self.world_size:
            raise ValueError(f"cannot resume {batches} batches of {size} ranks on {self.world_size} ranks")
        self._epoch, self._consumed = int(state["epoch"]), batches * size // self.world_size

    # -- iteration --------------------------------------------------------------------------------
    def _workers(self, epoch: int, start: int) -> WorkerPool:
        w, sp = self.worker_options, self._spec
        # A slot holds the largest batch the options allow (transforms may add a little: a
        # quarter more room; a batch that still does not fit travels whole through the pipe).
        n = sp.pad if sp.pad is not None else self.store.max_points
        b = sp.batch_size
        need = b * n * (4 * len(sp.features) + 1) + b * 4 * len(self.cloud_features) + 2 * 8 * b
        pin = _pin if w.pin_memory and torch.cuda.is_available() else None  # pragma: no mutate (CUDA only: none here)
        return WorkerPool(_Stream(sp, epoch, start, self._source), self.num_workers, int(1.25 * need) + 1024,
                          slots=w.prefetch + 1, start_method=w.start_method, timeout=w.timeout,
                          pin=pin)  # pragma: no mutate (as above)

    def __iter__(self) -> Iterator[dict]:
        epoch, start = self._epoch, self._consumed
        pad = self._spec.pad
        if self.num_workers == 0:
            # In-process: the stream itself. A DataLoader around it would only add its per-batch
            # overhead (a tenth of the time at a few thousand batches a second).
            batches = iter(_Stream(self._spec, epoch, start, self._source))
            if self.worker_options.pin_memory and torch.cuda.is_available():
                batches = (_pin(b) for b in batches)
        else:
            batches = iter(self._workers(epoch, start))
        for batch in batches:
            self._consumed += 1
            if pad is not None:
                counts = batch["counts"].numpy()
                self.points_truncated += int(counts.sum() - np.minimum(counts, pad).sum())
            yield batch
        self._epoch, self._consumed = epoch + 1, 0
