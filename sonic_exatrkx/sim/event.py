"""One simulated event end to end: particles -> hits -> measurements -> space points.

`simulate_event(config, event)` returns the ACTS tables (keyed by file stem) with exactly
the dtypes of `sonic_exatrkx.io.schema`; `write_events` writes them through the io layer.

Digitisation choices:
- every sensitive crossing is a truth hit (`hits` table, sorted by geometry id then
  particle, as ACTS orders its sim hits; hit_id = row index); a hit is detected with
  probability `efficiency`, and only detected hits get a measurement;
- a measurement is a 2-D Gaussian smear of the hit on its surface (r*phi and z on
  barrels, r*phi and r on discs) with the subsystem's resolution; local0/local1 are
  relative to the module centre; unmeasured parameters (phi, theta) are 0 as in ACTS;
  `time` is the true hit time; `local_key` is "0" as ACTS writes it;
- one space point per measurement everywhere, strips included: a strip "space point" is
  one 2-D measurement with strip-like (coarse along-strip) resolution, standing in for
  ACTS's pair of stereo strips. Both id columns are filled: measurement_id_2 =
  measurement_id_1 and geometry_id_2 = geometry_id_1. var_r / var_z come from the
  smearing (barrels: var_r = 0, var_z = sigma_z^2; discs: var_r = sigma_r^2, var_z = 0);
- noise: Poisson(f / (1 - f) * n_measured) extra measurements, spread uniformly over the
  sensitive area; they have no measurement-simhit-map entry (truth particle 0);
- measurements (and space points, same order) are sorted by geometry id, so noise is
  interleaved like real data; measurement_id = row index.

Randomness: `np.random.SeedSequence([seed, event])` spawns one stream each for
generation, scattering and digitisation, so event i is reproducible on its own (grid
shards can generate in parallel) and, e.g., a different noise level keeps the particles.
Scattering angles are drawn up front per (particle, hit number), so several small events
can share one vectorised propagation and still give bit-identical files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from sonic_exatrkx.io.schema import (
    HITS,
    MEASUREMENT_SIMHIT_MAP,
    MEASUREMENTS,
    PARTICLES,
    SPACEPOINT,
    TableSchema,
)
from sonic_exatrkx.sim.config import SimulationConfig
from sonic_exatrkx.sim.generator import C_MM_PER_NS, Particles, generate_particles
from sonic_exatrkx.sim.geometry import SUBSYSTEMS, Geometry, pack_geometry_id
from sonic_exatrkx.sim.propagation import Hits, max_hits, propagate

__all__ = ["STEMS", "digitize", "simulate_event", "simulate_events", "write_events"]

log = logging.getLogger(__name__)

STEMS = ("spacepoint", "hits", "particles", "measurements", "measurement-simhit-map")
TWO_PI = 2.0 * np.pi


def _frame(schema: TableSchema, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """DataFrame with the schema's column order and dtypes (object columns stay object:
    pandas 3 would otherwise infer its string dtype)."""
    data: dict[str, np.ndarray | pd.Series] = {}
    for name, dtype in schema.columns.items():
        if dtype.kind == "O":
            data[name] = pd.Series(np.asarray(columns[name], dtype=object), dtype=object,
                                   copy=False)
        else:
            data[name] = np.asarray(columns[name]).astype(dtype, copy=False)
    return pd.DataFrame(data, columns=list(schema.columns), copy=False)


def _modules(geometry: Geometry, layer: np.ndarray, r: np.ndarray, phi: np.ndarray,
             z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Module of points on their layers -> (geometry_id, phi centre, long-coordinate
    centre: z on barrels, r on discs)."""
    g = geometry.arrays
    n_phi, n_long = g.n_phi[layer], g.n_long[layer]
    barrel = g.is_barrel[layer]
    dphi = TWO_PI / n_phi
    iphi = np.minimum((np.mod(phi, TWO_PI) / dphi).astype(np.int64), n_phi - 1)
    lo = np.where(barrel, -g.half_length[layer], g.r_min[layer])
    hi = np.where(barrel, g.half_length[layer], g.r_max[layer])
    step = (hi - lo) / n_long
    coord = np.where(barrel, z, r)
    il = np.clip(np.floor((coord - lo) / step).astype(np.int64), 0, n_long - 1)
    sensitive = 1 + il * n_phi + iphi
    gid = pack_geometry_id(g.volume_id[layer], g.layer_id[layer], sensitive)
    return gid, (iphi + 0.5) * dphi, lo + (il + 0.5) * step


def _wrap(angle: np.ndarray) -> np.ndarray:
    return np.mod(angle + np.pi, TWO_PI) - np.pi


def _resolution(config: SimulationConfig, layer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sub = config.geometry.arrays.subsystem[layer]
    table = np.array([config.resolution[name] for name in SUBSYSTEMS], dtype=np.float64)
    return table[sub, 0], table[sub, 1]


def _noise(rng: np.random.Generator, config: SimulationConfig,
           n: int) -> tuple[np.ndarray, ...]:
    """`n` noise points uniform over the sensitive area -> layer, r, phi, z, t."""
    g = config.geometry.arrays
    layer = rng.choice(g.n_layers, size=n, p=g.area / g.area.sum())
    u1, u2 = rng.random(n), rng.random(n)
    phi = _wrap(TWO_PI * u1)
    barrel = g.is_barrel[layer]
    z_b = (2 * u2 - 1) * g.half_length[layer]
    r_d = np.sqrt(g.r_min[layer] ** 2 + u2 * (g.r_max[layer] ** 2 - g.r_min[layer] ** 2))
    r = np.where(barrel, g.position[layer], r_d)
    z = np.where(barrel, z_b, g.position[layer])
    t = rng.normal(0.0, config.vertex_sigma_t, n) + np.hypot(r, z) / C_MM_PER_NS
    return layer, r, phi, z, t


def _particles_table(parts: Particles, barcode: np.ndarray) -> pd.DataFrame:
    n = len(parts)
    return _frame(PARTICLES, {
        "particle_id": barcode, "particle_type": parts.pdg, "process": np.zeros(n),
        "vx": parts.vx, "vy": parts.vy, "vz": parts.vz, "vt": parts.vt,
        "px": parts.px, "py": parts.py, "pz": parts.pz, "m": parts.m, "q": parts.q,
    })


def digitize(rng: np.random.Generator, config: SimulationConfig, parts: Particles,
             hits: Hits) -> dict[str, pd.DataFrame]:
    """Turn truth hits into the five ACTS tables (see the module docstring)."""
    g = config.geometry.arrays
    barcode = parts.barcode
    r_hit = np.hypot(hits.x, hits.y)
    phi_hit = np.arctan2(hits.y, hits.x)
    gid, _, _ = _modules(config.geometry, hits.layer, r_hit, phi_hit, hits.z)
    pid = barcode[hits.particle]
    order = np.lexsort((hits.index, pid, gid))
    n_hits = order.size
    h = {k: getattr(hits, k)[order] for k in ("layer", "index", "x", "y", "z", "t", "px",
                                                "py", "pz", "e", "dpx", "dpy", "dpz")}
    gid, pid, r_hit, phi_hit = gid[order], pid[order], r_hit[order], phi_hit[order]
    hits_df = _frame(HITS, {
        "particle_id": pid, "geometry_id": gid, "tx": h["x"], "ty": h["y"], "tz": h["z"],
        "tt": h["t"], "tpx": h["px"], "tpy": h["py"], "tpz": h["pz"], "te": h["e"],
        "deltapx": h["dpx"], "deltapy": h["dpy"], "deltapz": h["dpz"],
        "deltae": np.zeros(n_hits), "index": h["index"],
    })

    # detected hits -> smeared measurements on the same surface
    det = np.flatnonzero(rng.random(n_hits) < config.efficiency)
    layer = h["layer"][det]
    s0, s1 = _resolution(config, layer)
    d0 = rng.normal(size=det.size) * s0
    d1 = rng.normal(size=det.size) * s1
    barrel = g.is_barrel[layer]
    r_m = np.where(barrel, r_hit[det], np.maximum(r_hit[det] + d1, 0.0))
    phi_m = _wrap(phi_hit[det] + d0 / r_hit[det])
    z_m = np.where(barrel, h["z"][det] + d1, h["z"][det])
    t_m = h["t"][det]

    # noise measurements
    f = config.noise_fraction
    n_noise = int(rng.poisson(f / (1.0 - f) * det.size)) if f > 0 and det.size else 0
    nl, nr, nphi, nz, nt = _noise(rng, config, n_noise)
    layer = np.concatenate([layer, nl])
    r_m, phi_m, z_m = np.concatenate([r_m, nr]), np.concatenate([phi_m, nphi]), \
        np.concatenate([z_m, nz])
    t_m = np.concatenate([t_m, nt])
    s0, s1 = _resolution(config, layer)
    # module (and its centre) from the true position: charge is deposited there
    gid_m, phi_c, long_c = _modules(config.geometry, layer,
                                    np.concatenate([r_hit[det], nr]),
                                    np.concatenate([phi_hit[det], nphi]),
                                    np.concatenate([h["z"][det], nz]))
    hit_id = np.concatenate([det, np.full(n_noise, -1)])
    barrel = g.is_barrel[layer]
    local0 = r_m * _wrap(phi_m - phi_c)
    local1 = np.where(barrel, z_m, r_m) - long_c

    order = np.lexsort((local1, local0, gid_m))
    n_meas = order.size
    layer, r_m, phi_m, z_m, t_m = layer[order], r_m[order], phi_m[order], z_m[order], t_m[order]
    s0, s1, gid_m, hit_id = s0[order], s1[order], gid_m[order], hit_id[order]
    local0, local1, barrel = local0[order], local1[order], barrel[order]
    mid = np.arange(n_meas, dtype=np.uint64)
    zeros = np.zeros(n_meas)
    measurements = _frame(MEASUREMENTS, {
        "measurement_id": mid, "geometry_id": gid_m,
        "local_key": np.full(n_meas, "0", dtype=object),
        "local0": local0, "local1": local1, "phi": zeros, "theta": zeros, "time": t_m,
        "var_local0": s0**2, "var_local1": s1**2, "var_phi": zeros, "var_theta": zeros,
        "var_time": zeros,
    })
    true = hit_id >= 0
    simhit_map = _frame(MEASUREMENT_SIMHIT_MAP, {"measurement_id": mid[true],
                                                 "hit_id": hit_id[true]})
    spacepoints = _frame(SPACEPOINT, {
        "measurement_id_1": mid, "measurement_id_2": mid, "geometry_id_1": gid_m,
        "geometry_id_2": gid_m, "x": r_m * np.cos(phi_m), "y": r_m * np.sin(phi_m),
        "z": z_m, "t": t_m, "var_r": np.where(barrel, 0.0, s1**2),
        "var_z": np.where(barrel, s1**2, 0.0),
    })
    return {
        "spacepoint": spacepoints,
        "hits": hits_df,
        "particles": _particles_table(parts, barcode),
        "measurements": measurements,
        "measurement-simhit-map": simhit_map,
    }


def _prepare(config: SimulationConfig, event: int) -> tuple[Particles, np.ndarray,
                                                             np.random.Generator]:
    """Per-event random streams -> (particles, scattering kicks, digitisation rng)."""
    if isinstance(event, bool) or not isinstance(event, (int, np.integer)) or event < 0:
        raise ValueError(f"event: must be an integer >= 0, got {event!r}")
    gen_seq, prop_seq, digi_seq = np.random.SeedSequence([config.seed, int(event)]).spawn(3)
    parts = generate_particles(np.random.default_rng(gen_seq), config)
    kicks = np.random.default_rng(prop_seq).standard_normal(
        (len(parts), max_hits(config.geometry), 2))
    return parts, kicks, np.random.default_rng(digi_seq)


def simulate_events(config: SimulationConfig, events: Iterable[int],
                    max_particles: int = 20000) -> Iterator[tuple[int, dict[str, pd.DataFrame]]]:
    """Yield (event, tables) for each event number, in order.

    Small events are propagated together (up to `max_particles` particles per batch) to
    amortise numpy's per-call overhead; the results are bit-identical to simulating each
    event alone (`simulate_event`), because every random number is drawn per event.
    """
    numbers = [int(e) for e in events]
    i = 0
    while i < len(numbers):
        batch: list[tuple[int, Particles, np.ndarray, np.random.Generator]] = []
        total = 0
        while i < len(numbers) and (not batch or total < max_particles):
            parts, kicks, digi = _prepare(config, numbers[i])
            batch.append((numbers[i], parts, kicks, digi))
            total += len(parts)
            i += 1
        allp = Particles.concat([b[1] for b in batch])
        hits = propagate(config.geometry, config.bfield, allp.vx, allp.vy, allp.vz, allp.vt,
                         allp.px, allp.py, allp.pz, allp.q, allp.m,
                         kicks=np.concatenate([b[2] for b in batch]),
                         material_scale=config.material_scale)
        offsets = np.cumsum([0] + [len(b[1]) for b in batch])
        owner = np.searchsorted(offsets, hits.particle, side="right") - 1
        order = np.argsort(owner, kind="stable")
        bounds = np.searchsorted(owner[order], np.arange(len(batch) + 1))
        for k, (event, parts, _, digi) in enumerate(batch):
            sel = order[bounds[k]:bounds[k + 1]]
            mine = Hits(**{f: getattr(hits, f)[sel] for f in Hits.__dataclass_fields__})
            mine.particle = mine.particle - offsets[k]
            yield event, digitize(digi, config, parts, mine)


def simulate_event(config: SimulationConfig, event: int) -> dict[str, pd.DataFrame]:
    """Simulate event number `event` of `config`; returns the ACTS tables by file stem."""
    return next(simulate_events(config, [event]))[1]


def write_events(config: SimulationConfig, output_dir: str | PathLike[str], events: int,
                 skip: int = 0, root: bool = False, progress: bool | None = None,
                 event_numbers: Iterable[int] | None = None) -> list[int]:
    """Simulate and write events `skip` .. `skip + events - 1` (or `event_numbers`).

    CSV: one ACTS file set per event in `output_dir`. With `root=True` also
    `output_dir/spacepoints.root` (tree `spacePoints`, one row per space point, plus the
    truth particle id per space point). Returns the event numbers written. ``progress``:
    a bar; None (default): only when stderr is a terminal (a redirected log gets no
    ``\r`` frames).
    """
    from tqdm.auto import tqdm

    from sonic_exatrkx.io.acts_csv import attach_truth, write_event

    if event_numbers is None:
        if isinstance(events, bool) or not isinstance(events, (int, np.integer)) or events < 0:
            raise ValueError(f"events: must be an integer >= 0, got {events!r}")
        if isinstance(skip, bool) or not isinstance(skip, (int, np.integer)) or skip < 0:
            raise ValueError(f"skip: must be an integer >= 0, got {skip!r}")
        numbers = list(range(int(skip), int(skip) + int(events)))
    else:
        numbers = [int(e) for e in event_numbers]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = None
    if root:
        from sonic_exatrkx.io.acts_root import SpacePointRootWriter

        writer = SpacePointRootWriter(out / "spacepoints.root", layout="flat")
    try:
        bar = tqdm(total=len(numbers), desc=f"simulate {config.sample} mu={config.pileup:g}",
                   unit="event", disable=None if progress is None else not progress)
        for event, tables in simulate_events(config, numbers):
            write_event(out, event, tables)
            bar.update()
            if writer is not None:
                sp = tables["spacepoint"].copy()
                sp["particle_id"] = attach_truth(sp, tables["measurement-simhit-map"],
                                                 tables["hits"])
                writer.write(event, sp)
        bar.close()
    finally:
        if writer is not None:
            writer.close()
    log.info("wrote %d %s events (pileup %g) to %s", len(numbers), config.sample,
             config.pileup, out)
    return numbers
