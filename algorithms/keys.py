"""Default event store keys, shared by readers, algorithms and writers."""

from __future__ import annotations

#: ACTS CSV file stem -> event store key of its table.
TABLE_KEYS = {
    "spacepoint": "spacepoints",
    "hits": "hits",
    "particles": "particles",
    "measurements": "measurements",
    "measurement-simhit-map": "measurement_simhit_map",
}
SPACEPOINTS = TABLE_KEYS["spacepoint"]
#: uint64 particle id per space point (0 = noise), from the truth chain.
SPACEPOINT_PARTICLE_IDS = "spacepoint_particle_ids"
#: int64 track id per space point (the output of track finding).
TRACKS = "tracks"
#: float32 TrackML score weight per space point (from a TrackML truth file's ``weight``).
SPACEPOINT_WEIGHTS = "spacepoint_weights"
