"""Find and remove what a killed Triton server leaves behind (Linux ``/proc`` based).

Each Python-backend model instance runs in a ``triton_python_backend_stub`` child process
that talks to the server through a POSIX shared-memory region
``/dev/shm/triton_python_backend_shm_region_<uuid>``. The stub's command line is::

    triton_python_backend_stub <model.py> <shm region> <shm size> <growth> <server pid> ...

so argv[2] names its region and argv[5] the PID of the server that started it, whose
direct child it is. A SIGTERM'd server removes both; after a SIGKILL a stub can outlive its
server (the kernel re-parents it) and keep its region. A stub counts as orphaned only when
its parent is no longer that PID and no process with that PID is running that started
before the stub (so a recycled PID is not mistaken for its server). Stubs of a live server
are never touched, and a region is only removed when no live stub names it and no live
process maps it.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .environment import STUB_NAME

log = logging.getLogger(__name__)

SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"
_PROC = Path("/proc")


@dataclass(frozen=True)
class StubProcess:
    """A live Python-backend stub process and what its command line says about it."""

    pid: int
    server_pid: int
    shm_region: str
    model_path: str
    instance: str
    ppid: int = 0
    start_time: int = 0  # clock ticks after boot (/proc/<pid>/stat field 22)


@dataclass
class CleanupReport:
    """What a cleanup did: stub PIDs killed and shared-memory files removed."""

    killed: list[int] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.killed or self.removed)


def _read_cmdline(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, parent PID, start time in ticks) from ``/proc/<pid>/stat``."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return fields[0], int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def process_running(pid: int) -> bool:
    """True for an existing process that is not a zombie."""
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _parse_stub(pid: int, argv: list[str]) -> StubProcess | None:
    if not argv or Path(argv[0]).name != STUB_NAME or len(argv) < 6:
        return None
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return None
    try:
        server_pid = int(argv[5])
    except ValueError:
        return None
    region = argv[2] if _valid_region_name(argv[2]) else ""
    instance = argv[8] if len(argv) > 8 else ""
    return StubProcess(pid, server_pid, region, argv[1], instance, ppid=st[1], start_time=st[2])


def list_stub_processes() -> list[StubProcess]:
    """All running (non-zombie) Python-backend stubs visible in ``/proc``."""
    stubs = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stub = _parse_stub(int(entry.name), _read_cmdline(int(entry.name)))
            if stub is not None:
                stubs.append(stub)
    return stubs


def stubs_of(server_pid: int) -> list[StubProcess]:
    """Running stubs started by the server with PID ``server_pid``."""
    return [s for s in list_stub_processes() if s.server_pid == server_pid]


def is_orphan(stub: StubProcess) -> bool:
    """Whether the server that started ``stub`` is gone."""
    if stub.ppid == stub.server_pid:
        return False  # its server is alive: the kernel re-parents a child when it dies
    st = _stat(stub.server_pid)
    if st is None or st[0] in ("Z", "X"):
        return True
    return st[2] > stub.start_time  # that PID now belongs to a newer process


def _valid_region_name(name: str) -> bool:
    return name.startswith(SHM_PREFIX) and "/" not in name and name not in (".", "..")


def shm_regions() -> list[Path]:
    """Python-backend shared-memory files currently in ``/dev/shm``."""
    if not SHM_DIR.is_dir():
        return []
    return sorted(p for p in SHM_DIR.iterdir() if _valid_region_name(p.name))


def _may_map_regions(entry: Path, uid: int) -> bool:
    """Whether a process whose maps we cannot read may map a Python-backend region: one of
    ours that is a Triton server or stub, or whose name we cannot read either. (Only the
    server and its stubs map these regions; a sandbox's init process that hides its maps
    must not stop every sweep.)"""
    try:
        if entry.stat().st_uid != uid:
            return False
        comm = (entry / "comm").read_text().strip()
    except FileNotFoundError:
        return False  # exited meanwhile
    except OSError:
        return True
    return comm == "tritonserver" or STUB_NAME.startswith(comm)


def _mapped_regions() -> tuple[set[str], bool]:
    """Region names mapped by any live process; False when some process could not be read."""
    names: set[str] = set()
    complete = True
    uid = os.getuid()
    marker = str(SHM_DIR / SHM_PREFIX)
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "maps").read_text(errors="replace")
        except FileNotFoundError:
            continue  # exited meanwhile
        except OSError:
            if _may_map_regions(entry, uid):
                complete = False  # a server or stub we cannot inspect: be conservative
            continue
        for line in text.splitlines():
            i = line.find(marker)
            if i >= 0:
                names.add(line[i + len(str(SHM_DIR)) + 1:].split()[0])
    return names, complete


def _kill_and_wait(stubs: list[StubProcess], timeout: float = 5.0) -> list[int]:
    """SIGKILL the stubs (re-checking each PID still is that stub) and wait until gone."""
    killed = []
    for stub in stubs:
        now = _parse_stub(stub.pid, _read_cmdline(stub.pid))
        if now is None or (now.start_time, now.server_pid) != (stub.start_time, stub.server_pid):
            continue  # exited, or the PID now belongs to something else
        try:
            os.kill(stub.pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        except PermissionError as exc:
            log.warning("cannot kill stale Triton stub %d: %s", stub.pid, exc)
            continue
        killed.append(stub.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(process_running(p) for p in killed):
        time.sleep(0.05)
    return killed


def _remove(path: Path, report: CleanupReport) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc)
        return
    report.removed.append(path)


def cleanup_server(server_pid: int, regions: set[str] | frozenset[str] = frozenset()
                   ) -> CleanupReport:
    """Kill the orphaned stubs of the exited server ``server_pid``; remove their regions.

    ``regions`` adds region names recorded while the server ran, so that a region whose
    stub already died is removed too. Stubs of a running server (even one that got the
    same PID since) and regions still mapped by a process are left alone.
    """
    report = CleanupReport()
    stubs = [s for s in stubs_of(server_pid) if is_orphan(s)]
    report.killed = _kill_and_wait(stubs)
    names = {s.shm_region for s in stubs if s.shm_region} | {
        r for r in regions if _valid_region_name(r)}
    if names:
        still_live = {s.shm_region for s in list_stub_processes()}
        mapped, _ = _mapped_regions()
        for name in sorted(names - still_live - mapped):
            _remove(SHM_DIR / name, report)
    if report:
        log.info("cleaned up after Triton server %d: killed stubs %s, removed %d shm files",
                 server_pid, report.killed, len(report.removed))
    return report


def cleanup_orphans(grace_s: float = 5.0) -> CleanupReport:
    """Clean up after crashed servers: orphaned stubs and unused shm regions.

    Kills stubs whose server is gone (:func:`is_orphan`) and removes their regions, then
    removes any other region file of ours that no live stub names and no process maps, if
    older than ``grace_s`` seconds (a starting server creates a region just before mapping
    it). Regions of a live server are always mapped by it, so never removed.
    """
    report = CleanupReport()
    stubs = list_stub_processes()
    orphans = [s for s in stubs if is_orphan(s)]
    report.killed = _kill_and_wait(orphans)
    live = {s.shm_region for s in list_stub_processes()}
    mapped, complete = _mapped_regions()
    named = {s.shm_region for s in orphans if s.shm_region}
    for name in sorted(named - live - mapped):
        _remove(SHM_DIR / name, report)
    if complete:
        uid, now = os.getuid(), time.time()
        for path in shm_regions():
            if path.name in live or path.name in mapped:
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if st.st_uid == uid and now - st.st_mtime >= grace_s:
                _remove(path, report)
    if report:
        log.info("removed Triton leftovers: killed stubs %s, removed %s", report.killed,
                 [p.name for p in report.removed])
    return report
