"""Regenerate the shipped sample events in data/sample/ (run from the repository root).

    python data/make_sample.py

Writes, with the toy detector simulation (HNL sample, no pileup, seed 2026):
  sample/csv/          events 0-2, full ACTS CSV file sets (two-measurement space points)
  sample/csv-single/   the same events' space points in the older single-measurement
                       layout (measurement_id, x, y, z, var_r, var_z), no truth files
  sample/spacepoints.root  the same space points, ACTS flat `spacePoints` tree
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sonic_exatrkx.io import acts_csv
from sonic_exatrkx.io.acts_root import SpacePointRootWriter
from sonic_exatrkx.io.schema import SPACEPOINT_SINGLE
from sonic_exatrkx.sim import SimulationConfig, write_events

SEED = 2026
EVENTS = 3


def main() -> None:
    sample = Path(__file__).resolve().parent / "sample"
    shutil.rmtree(sample, ignore_errors=True)
    csv_dir, single_dir = sample / "csv", sample / "csv-single"
    numbers = write_events(SimulationConfig(sample="hnl", pileup=0, seed=SEED), csv_dir, EVENTS,
                           progress=False)
    single_dir.mkdir(parents=True)
    with SpacePointRootWriter(sample / "spacepoints.root", layout="flat") as root:
        for event in numbers:
            sp = acts_csv.read_spacepoints(acts_csv.event_path(csv_dir, event, "spacepoint"))
            root.write(event, sp)
            single = sp.rename(columns={"measurement_id_1": "measurement_id",
                                        "geometry_id_1": "geometry_id"})
            single = single[[c for c in SPACEPOINT_SINGLE.columns if c != "geometry_id"]]
            acts_csv.write_table(acts_csv.event_path(single_dir, event, "spacepoint"), single,
                                 SPACEPOINT_SINGLE)
    for path in sorted(sample.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(sample.parent)}: {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
