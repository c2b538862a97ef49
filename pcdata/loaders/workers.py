"""Worker processes (``num_workers > 0``): batches handed over through reused shared-memory slots.

torch's DataLoader moves every batch through fresh shared memory: a new segment per tensor,
written by the worker and mapped again by the main process. First touches of fresh pages are
expensive (on the 2-core VM of the README's benchmark, 2.5-3 ms for a 600 kB batch of 256 jets,
twenty times the time to make it), so DataLoader workers were slower than reading in-process.
Here each worker owns a few slots in one shared buffer, allocated and touched once: it writes a
batch into the next free slot and sends only its layout through a pipe; the main process copies
the batch out into its own tensors and frees the slot. Batches are taken from the workers in
turn, as DataLoader does, so the stream is the same as in-process.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Callable, Iterator

import numpy as np
import torch

__all__ = ["WorkerPool"]

_ALIGN = 64  # every tensor of a slot starts on a 64-byte boundary


def _layout(batch: dict[str, torch.Tensor]) -> tuple[list[tuple[str, str, tuple[int, ...], int]], int]:
    """(key, dtype, shape, byte offset) of each tensor packed into one slot, and the bytes used."""
    entries, offset = [], 0
    for key, value in batch.items():
        entries.append((key, str(value.dtype).removeprefix("torch."), tuple(value.shape), offset))
        offset += -(-value.numel() * value.element_size() // _ALIGN) * _ALIGN
    return entries, offset


def _bytes(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy().reshape(-1).view(np.uint8)


def _worker_loop(stream, worker: int, num_workers: int, slots: torch.Tensor, free, conn, stop) -> None:
    """One worker: make its share of the batches, write each into a slot, send its layout."""
    torch.set_num_threads(1)  # as DataLoader workers do: the processes share the cores
    memory = slots.numpy()
    try:
        for j, batch in enumerate(stream.iter_share(worker, num_workers)):
            if stop.is_set():
                return
            entries, used = _layout(batch)
            if used > memory.shape[1]:  # larger than planned (a transform grew it): send it whole
                conn.send(("whole", {k: v.numpy() for k, v in batch.items()}))
                continue
            while not free.acquire(timeout=0.2):
                if stop.is_set():
                    return
            slot = memory[j % len(memory)]
            for (key, _, _, offset), value in zip(entries, batch.values()):
                data = _bytes(value)
                slot[offset : offset + len(data)] = data
            conn.send(("slot", (j % len(memory), entries)))
        conn.send(("end", None))
    except BaseException as err:  # reported to the main process, which raises it
        try:
            conn.send(("error", err))
        except Exception:  # an exception that does not pickle: its text then
            conn.send(("error", RuntimeError(f"{type(err).__name__}: {err}")))
    finally:
        conn.close()


class WorkerPool:
    """Runs ``stream.iter_share(worker, num_workers)`` in worker processes; yields their batches in turn.

    Args:
        stream: a picklable object with ``iter_share(worker, num_workers) -> Iterator[dict]``.
        num_workers: worker processes.
        slot_bytes: size of one batch slot (a batch that needs more goes through the pipe whole).
        slots: slots per worker (batches a worker may have ready ahead).
        start_method: ``fork``, ``spawn`` or ``forkserver`` (None: the platform's default).
        timeout: seconds to wait for a batch (0: forever, while the worker is alive).
        pin: a function applied to each batch in the main process (pinning), or None.
    """

    def __init__(self, stream, num_workers: int, slot_bytes: int, slots: int = 3,
                 start_method: str | None = None, timeout: float = 0.0,
                 pin: Callable[[dict], dict] | None = None):
        self.stream, self.num_workers, self.slots = stream, num_workers, max(1, slots)
        self.slot_bytes = -(-max(slot_bytes, _ALIGN) // _ALIGN) * _ALIGN
        self.ctx = mp.get_context(start_method)
        self.timeout, self.pin = timeout, pin

    def _receive(self, conn, proc, w: int):
        waited = 0.0
        step = self.timeout if 0 < self.timeout < 1 else 1.0
        while not conn.poll(step):
            waited += step
            if not proc.is_alive():
                raise RuntimeError(f"loader worker {w} (pid {proc.pid}) exited unexpectedly (exit code {proc.exitcode})")
            if self.timeout and waited >= self.timeout:
                raise RuntimeError(f"loader worker {w} gave no batch in {self.timeout:g} s")
        try:
            return conn.recv()
        except EOFError:
            proc.join(1)
            raise RuntimeError(f"loader worker {w} (pid {proc.pid}) exited unexpectedly (exit code {proc.exitcode})") from None

    def __iter__(self) -> Iterator[dict]:
        n, ctx = self.num_workers, self.ctx
        memories = [torch.zeros((self.slots, self.slot_bytes), dtype=torch.uint8).share_memory_() for _ in range(n)]
        frees = [ctx.Semaphore(self.slots) for _ in range(n)]
        stop = ctx.Event()
        conns, procs = [], []
        try:
            for w in range(n):
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_worker_loop, args=(self.stream, w, n, memories[w], frees[w], send, stop),
                                   daemon=True, name=f"pcdata-loader-{w}")
                proc.start()
                send.close()  # the worker holds the sending end: its exit ends our reads
                conns.append(recv)
                procs.append(proc)
            w = 0
            while True:
                kind, payload = self._receive(conns[w], procs[w], w)
                if kind == "end":  # batches go round-robin: the first worker to finish ends the stream
                    return
                if kind == "error":
                    raise payload
                if kind == "whole":
                    batch = {k: torch.from_numpy(v) for k, v in payload.items()}
                else:
                    slot = memories[w].numpy()[payload[0]]
                    batch = {}
                    for key, dtype, shape, offset in payload[1]:
                        out = torch.empty(shape, dtype=getattr(torch, dtype))
                        data = _bytes(out) if out.numel() else None
                        if data is not None:
                            data[:] = slot[offset : offset + len(data)]
                        batch[key] = out
                    frees[w].release()
                yield self.pin(batch) if self.pin else batch
                w = (w + 1) % n
        finally:
            stop.set()
            for f in frees:  # wake any worker waiting for a slot, so that it sees stop
                for _ in range(self.slots):
                    f.release()
            for proc in procs:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.terminate()
                    proc.join()
            for c in conns:
                c.close()
