"""Framework algorithms built on the sonic_exatrkx library: readers, writers, track finding."""

from algorithms.csv_io import CsvEventReader, CsvEventWriter, CsvTrackWriter
from algorithms.input_options import InputCounts, InputOptions
from algorithms.keys import SPACEPOINT_PARTICLE_IDS, SPACEPOINTS, TABLE_KEYS, TRACKS
from algorithms.root_io import RootSpacePointReader, RootSpacePointWriter, RootTrackWriter
from algorithms.trackml_io import TrackMLReader

__all__ = [
    "SPACEPOINTS",
    "SPACEPOINT_PARTICLE_IDS",
    "TABLE_KEYS",
    "TRACKS",
    "CsvEventReader",
    "CsvEventWriter",
    "CsvTrackWriter",
    "InputCounts",
    "InputOptions",
    "RootSpacePointReader",
    "RootSpacePointWriter",
    "RootTrackWriter",
    "TrackMLReader",
]
