"""System shared memory for a Triton server on this node: a per-client pool of regions.

Instead of copying tensors into the gRPC/HTTP message, the client writes the inputs into
a ``/dev/shm`` region registered with the server, and the server writes the outputs whose
size is known in advance (e.g. ``LABELS``: one per space point) into the same region. A
request takes a free region large enough (or creates one, rounded up to a power of two)
and gives it back when it completes, so with ``max_in_flight`` events the pool holds about
that many regions, each registered once per server. :meth:`SharedMemoryPool.close`
unregisters every region on every server it was registered with and unlinks it, also
after failures; a region is never left in ``/dev/shm`` by a job that closed its clients.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("sonic_exatrkx.sonic")

#: Region names and ``/dev/shm`` file names start with this (tests look for leftovers).
PREFIX = "sonic_exatrkx_shm"
_ALIGN = 64
_MIN_BYTES = 1 << 16
_ids = itertools.count()


def aligned(nbytes: int) -> int:
    """``nbytes`` rounded up to the slot alignment (tensors start on 64-byte bounds)."""
    return -(-int(nbytes) // _ALIGN) * _ALIGN


def layout(sizes: Iterable[tuple[str, int]]) -> tuple[dict[str, int], int]:
    """Offsets of consecutive aligned slots for ``(name, nbytes)`` and the total size."""
    offsets: dict[str, int] = {}
    total = 0
    for name, nbytes in sizes:
        offsets[name] = total
        total += aligned(max(int(nbytes), 1))
    return offsets, total


def _shm() -> Any:
    import tritonclient.utils.shared_memory as shm

    return shm


@dataclass(eq=False)
class Region:
    """One ``/dev/shm`` region: its Triton name (= key without the slash), size, handle
    and the servers it is registered with."""

    name: str
    size: int
    handle: Any
    registered: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        return f"/{self.name}"

    def write(self, offset: int, array: np.ndarray) -> None:
        _shm().set_shared_memory_region(self.handle, [np.ascontiguousarray(array)], offset)

    def read(self, offset: int, dtype: np.dtype[Any], shape: Iterable[int]) -> np.ndarray:
        """A copy (the region is reused by the next request)."""
        view = _shm().get_contents_as_numpy(self.handle, dtype, list(shape), offset)
        out = np.array(view)
        del view
        return out


class SharedMemoryPool:
    """Regions for one client's requests; thread safe.

    ``register(url, region)`` / ``unregister(url, region)`` are callables that talk to the
    server at ``url`` (the client's connection): the pool stays transport-agnostic.
    """

    def __init__(self, label: str, register: Callable[[str, Region], None],
                 unregister: Callable[[str, Region], None]) -> None:
        self.label = label
        self._register = register
        self._unregister = unregister
        self._free: list[Region] = []
        self._all: list[Region] = []
        self._lock = threading.Lock()

    @property
    def regions(self) -> list[Region]:
        with self._lock:
            return list(self._all)

    def _create(self, nbytes: int) -> Region:
        size = max(_MIN_BYTES, 1 << max(int(nbytes) - 1, 1).bit_length())
        name = f"{PREFIX}_{os.getpid()}_{next(_ids)}"
        handle = _shm().create_shared_memory_region(name, f"/{name}", size, create_only=True)
        return Region(name=name, size=size, handle=handle)

    def acquire(self, nbytes: int) -> Region:
        """A free region of at least ``nbytes`` (a new one when none fits; a free region
        too small for it is dropped, so the pool does not grow past the requests open)."""
        drop: Region | None = None
        with self._lock:
            fits = [r for r in self._free if r.size >= nbytes]
            if fits:
                region = min(fits, key=lambda r: r.size)
                self._free.remove(region)
                return region
            if self._free:
                drop = self._free.pop(0)
                self._all.remove(drop)
        if drop is not None:
            self._destroy(drop)
        region = self._create(nbytes)
        with self._lock:
            self._all.append(region)
        return region

    def ensure_registered(self, url: str, region: Region) -> None:
        """Register ``region`` with the server at ``url`` once."""
        if url in region.registered:
            return
        self._register(url, region)
        region.registered.add(url)

    def release(self, region: Region, *, reuse: bool = True) -> None:
        """Give a region back after its request completed; ``reuse=False`` destroys it
        (a timed-out try may still be writing into it on the server)."""
        with self._lock:
            known = region in self._all
            if known and reuse:
                self._free.append(region)
                return
            if known:
                self._all.remove(region)
        self._destroy(region)  # also when the pool closed while the request was out

    def forget(self, url: str) -> None:
        """The server at ``url`` failed (maybe restarted, losing its registrations):
        register again before the next use there."""
        with self._lock:
            for region in self._all:
                region.registered.discard(url)

    def _destroy(self, region: Region) -> None:
        """Unregister ``region`` everywhere and unlink it; once, whoever calls first
        (a request's completion and :meth:`close` may race)."""
        with self._lock:
            handle, region.handle = region.handle, None
            urls, region.registered = list(region.registered), set()
        if handle is None:
            return
        for url in urls:
            try:
                self._unregister(url, region)
            except Exception as exc:  # noqa: BLE001 - a dead server holds nothing of ours
                log.debug("%s: unregistering %s on %s failed: %s", self.label, region.name,
                          url, exc)
        try:
            _shm().destroy_shared_memory_region(handle)
        except Exception as exc:  # noqa: BLE001 - reported, the job goes on
            log.warning("%s: destroying shared memory region %s failed: %r", self.label,
                        region.name, exc)

    def close(self) -> None:
        """Unregister and unlink every region; later requests get a fresh pool."""
        with self._lock:
            regions, self._all, self._free = self._all, [], []
        for region in regions:
            self._destroy(region)


def probe(label: str, register: Callable[[str, Region], None],
          unregister: Callable[[str, Region], None], url: str) -> str | None:
    """None if the server at ``url`` can map this node's shared memory, else why not
    (a server on another node cannot open our ``/dev/shm`` file)."""
    pool = SharedMemoryPool(f"{label} probe", register, unregister)
    try:
        region = pool.acquire(_ALIGN)
        try:
            pool.ensure_registered(url, region)
        except Exception as exc:  # noqa: BLE001 - the answer is the message
            from sonic_exatrkx.sonic.errors import describe

            return describe(exc)
        return None
    finally:
        pool.close()


@dataclass
class Slots:
    """One request's place in a region: the inputs' and the known outputs' offsets."""

    region: Region
    offsets: dict[str, int]
    outputs: dict[str, int]  # output name -> bytes reserved for it
    wire: Any = None  # tritonclient InferInput / InferRequestedOutput lists, built once


class SharedMemoryRequests:
    """The shared-memory side of a Triton client: takes a region per request, writes the
    inputs, plans the outputs whose size follows from the inputs, registers regions with
    servers and reads outputs back. Servers that cannot map our regions (another node)
    are remembered and get the network path, logged once through ``warn_once``."""

    def __init__(self, label: str, register: Callable[[str, Region], None],
                 unregister: Callable[[str, Region], None],
                 warn_once: Callable[[str, str], None]) -> None:
        self.label = label
        self.pool = SharedMemoryPool(label, register, unregister)
        self._register, self._unregister = register, unregister
        self._warn_once = warn_once
        self._refused: set[str] = set()
        self._lock = threading.Lock()

    def refuse(self, url: str, why: str) -> None:
        """The server at ``url`` cannot use this node's shared memory."""
        with self._lock:
            self._refused.add(url)
        self._warn_once(f"noshm:{url}", f"{self.label}: the server at {url} cannot use this "
                        f"node's shared memory ({why}); using the network for it")

    def check_server(self, url: str) -> None:
        """At job start: can ``url`` map our regions? (Else: the network, logged.)"""
        if url in self._refused:
            return
        try:
            why = probe(self.label, self._register, self._unregister, url)
        except Exception as exc:  # noqa: BLE001 - /dev/shm itself (full, missing, taken)
            from sonic_exatrkx.sonic.errors import describe

            self._warn_once("shm-create", f"{self.label}: cannot create a shared memory "
                            f"region ({describe(exc)}); using the network until one can be")
            return
        if why is not None:
            self.refuse(url, why)

    def prepare(self, inputs: Mapping[str, np.ndarray], input_specs: Mapping[str, Any],
                output_specs: Mapping[str, Any]) -> Slots | None:
        """Take a region, write the inputs and reserve slots for the outputs whose size
        is known from the inputs (the others come back in the response). None for an
        empty event (Triton refuses 0-byte regions)."""
        from sonic_exatrkx.sonic.client import bind_dims

        if any(np.asarray(a).nbytes == 0 for a in inputs.values()):
            return None
        bound = bind_dims(input_specs, inputs)
        sizes = [(f"in:{k}", np.asarray(a).nbytes) for k, a in inputs.items()]
        outputs: dict[str, int] = {}
        for name, spec in output_specs.items():
            dims = [bound.get(d, -1) if isinstance(d, str) else d for d in spec.dims]
            if all(d >= 0 for d in dims):
                outputs[name] = int(np.prod(dims, dtype=np.int64)) * spec.numpy_dtype.itemsize
                sizes.append((f"out:{name}", outputs[name]))
        offsets, total = layout(sizes)
        region = self.pool.acquire(total)
        try:
            for key, arr in inputs.items():
                region.write(offsets[f"in:{key}"], np.asarray(arr))
        except BaseException:
            self.pool.release(region, reuse=False)
            raise
        return Slots(region, offsets, outputs)

    def use(self, slots: Slots | None, url: str) -> bool:
        """Whether this try goes through shared memory (registering the region on
        ``url`` first); a server that refuses the region gets the network path. A
        recoverable failure (the server is down) is raised: a failed try."""
        if slots is None or url in self._refused:
            return False
        try:
            self.pool.ensure_registered(url, slots.region)
        except Exception as exc:  # noqa: BLE001
            from sonic_exatrkx.sonic.errors import describe, is_recoverable

            if is_recoverable(exc):
                raise
            self.refuse(url, describe(exc))
            return False
        return True

    def wire(self, slots: Slots, inputs: Mapping[str, np.ndarray], outputs: Iterable[str],
             lib: Any) -> Any:
        """The request's tensors as tritonclient objects pointing into the region."""
        if slots.wire is None:
            from tritonclient.utils import np_to_triton_dtype

            wire = []
            for key, arr in inputs.items():
                arr = np.asarray(arr)
                item = lib.InferInput(key, list(arr.shape), np_to_triton_dtype(arr.dtype))
                item.set_shared_memory(slots.region.name, arr.nbytes,
                                       offset=slots.offsets[f"in:{key}"])
                wire.append(item)
            outs = []
            for name in outputs:
                out = lib.InferRequestedOutput(name)
                if name in slots.outputs:
                    out.set_shared_memory(slots.region.name, max(slots.outputs[name], 1),
                                          offset=slots.offsets[f"out:{name}"])
                outs.append(out)
            slots.wire = (wire, outs, 0)
        return slots.wire

    def read_output(self, slots: Slots, result: Any, key: str, spec: Any
                    ) -> np.ndarray | None:
        """An output the server wrote into the region (shape from the response; one
        larger than its slot is an error)."""
        from sonic_exatrkx.sonic.errors import InferenceError

        meta = result.get_output(key)
        if meta is None:
            return None
        shape = [int(d) for d in (meta["shape"] if isinstance(meta, dict) else meta.shape)]
        if int(np.prod(shape, dtype=np.int64)) * spec.numpy_dtype.itemsize \
                > slots.outputs[key]:
            raise InferenceError(f"{self.label}: output '{key}' {shape} does not fit its "
                                 f"shared memory slot of {slots.outputs[key]} bytes")
        return slots.region.read(slots.offsets[f"out:{key}"], spec.numpy_dtype, shape)

    def release(self, slots: Slots, *, reuse: bool) -> None:
        self.pool.release(slots.region, reuse=reuse)

    def forget(self, url: str) -> None:
        self.pool.forget(url)

    def close(self) -> None:
        self.pool.close()
