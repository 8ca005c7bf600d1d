"""Prophesee `.dat` event files (Gen1's `<name>_td.dat`), read memory-mapped and written for generated sets.

Layout (Prophesee's automotive toolbox, src/io/dat_events_tools.py): text header lines that start with
"% " (Height and Width among them), then two bytes, the event type and the event size (8), then the events,
8 bytes each, little-endian: a uint32 timestamp in µs and a uint32 word packing x in bits 0-13, y in bits
14-27 and the polarity in bit 28. A file without header lines starts with its events (old files).

Gen1 holds ~750 GB of events, so nothing here reads a whole file: `DatFile` parses the header once, maps the
events and finds a time window with a binary search on the (sorted) timestamps, touching a few pages.
"""

import bisect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikesweep.data.registry import DataError

EVENT_SIZE = 8
RAW = np.dtype([("t", "<u4"), ("packed", "<u4")])
EVENTS = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
X_BITS, Y_SHIFT, P_SHIFT = 0x3FFF, 14, 28
MAX_HEADER = 1 << 20  # a header longer than this is not a header: the file is not a .dat


@dataclass(frozen=True)
class DatHeader:
    offset: int  # byte where the events start
    count: int  # number of events
    event_type: int
    width: int | None  # as the header states them, when it does
    height: int | None


def read_header(path: Path) -> DatHeader:
    """Parse the header and count the events from the file size; a truncated file fails naming it."""
    path = Path(path)
    width = height = None
    lines = 0
    with open(path, "rb") as f:
        while True:
            start = f.tell()
            line = f.readline()
            if not line.startswith(b"% "):
                break
            lines += 1
            words = line.split()
            if len(words) > 2 and words[1] in (b"Width", b"Height") and words[2].isdigit():
                if words[1] == b"Width":
                    width = int(words[2])
                else:
                    height = int(words[2])
            if f.tell() > MAX_HEADER:
                raise DataError(f"{path} has no end to its '%' header within {MAX_HEADER} bytes: not a .dat file")
        f.seek(start)
        event_type, event_size = 0, EVENT_SIZE
        if lines:
            kind = f.read(2)
            if len(kind) < 2:
                raise DataError(f"{path} is truncated: its header lacks the event type and size bytes; download it again")
            event_type, event_size = kind[0], kind[1]
        offset = f.tell()
        size = f.seek(0, 2)
    if event_size != EVENT_SIZE:
        raise DataError(f"{path} states events of {event_size} bytes, not {EVENT_SIZE}: not a Gen1 td.dat file")
    if (size - offset) % EVENT_SIZE:
        raise DataError(f"{path} is truncated: {size - offset} event bytes is not a multiple of {EVENT_SIZE}; "
                        f"download it again")
    return DatHeader(offset, (size - offset) // EVENT_SIZE, event_type, width, height)


def decode(raw: np.ndarray) -> np.ndarray:
    """Raw (t, packed) records -> EVENTS (t, x, y, p)."""
    out = np.empty(len(raw), dtype=EVENTS)
    packed = raw["packed"]
    out["t"] = raw["t"]
    out["x"] = packed & X_BITS
    out["y"] = (packed >> Y_SHIFT) & X_BITS
    out["p"] = (packed >> P_SHIFT) & 1
    return out


class DatFile:
    """The events of one file, memory-mapped: `window(t0, t1)` decodes only events with t0 <= t < t1."""

    def __init__(self, path: Path, header: DatHeader | None = None) -> None:
        self.path = Path(path)
        self.header = header or read_header(self.path)

    def __len__(self) -> int:
        return self.header.count

    def raw(self) -> np.ndarray:
        if self.header.count == 0:  # an empty map is refused by mmap
            return np.empty(0, dtype=RAW)
        return np.memmap(self.path, dtype=RAW, mode="r", offset=self.header.offset, shape=(self.header.count,))

    def window(self, t0: int, t1: int) -> np.ndarray:
        raw = self.raw()
        times = raw["t"]
        # bisect reads ~log2(n) timestamps; np.searchsorted would first copy the strided field whole
        lo = bisect.bisect_left(times, t0)
        hi = bisect.bisect_left(times, t1, lo=lo)
        return decode(np.asarray(raw[lo:hi]))

    def read(self) -> np.ndarray:
        """Every event: for tests and small generated files, never for a whole Gen1 recording."""
        return decode(np.asarray(self.raw()))


def write_dat(path: Path, events: np.ndarray, width: int, height: int, event_type: int = 0) -> None:
    """Write EVENTS-like records (fields t, x, y, p; t sorted, in µs) as a .dat file with a header."""
    t = np.asarray(events["t"], dtype=np.int64)
    x, y, p = (np.asarray(events[k], dtype=np.int64) for k in ("x", "y", "p"))
    if len(t) and (np.any(np.diff(t) < 0) or t[0] < 0 or t[-1] > np.iinfo(np.uint32).max):
        raise ValueError("event times must be sorted and fit in uint32 µs")
    if np.any((x < 0) | (x >= width) | (y < 0) | (y >= height)) or max(width, height) > X_BITS:
        raise ValueError(f"event coordinates must lie on the {width}x{height} sensor (at most {X_BITS} per side)")
    raw = np.empty(len(t), dtype=RAW)
    raw["t"] = t
    raw["packed"] = x | (y << Y_SHIFT) | ((p > 0).astype(np.int64) << P_SHIFT)
    header = f"% Data file containing Event2D events.\n% Version 2\n% Height {height}\n% Width {width}\n"
    with open(path, "wb") as f:
        f.write(header.encode("ascii") + bytes([event_type, EVENT_SIZE]))
        f.write(raw.tobytes())
