"""Read a wandb offline run file (run-<id>.wandb) record by record, to know what it holds.

The file is wandb's LevelDB-log framing (7-byte header, 32 KiB blocks, records split FULL/FIRST/MIDDLE/LAST)
around protobuf `Record` messages. A process killed with SIGKILL leaves a file whose last records may be
missing (they died with wandb-core) or cut short: reading stops at the first incomplete record.
"""

import json
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a wandb run file")
    pos, pending, records = HEADER, b"", []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # too little room left in the block for a record header
            pos += BLOCK - pos % BLOCK
            continue
        length = int.from_bytes(data[pos + 4 : pos + 6], "little")
        kind = data[pos + 6]
        chunk = data[pos + 7 : pos + 7 + length]
        if (kind == 0 and length == 0) or len(chunk) < length:  # end of data, or a record cut short
            break
        pos += 7 + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def history(path: Path) -> list[dict[str, str]]:
    """Every logged history row as {key: json-encoded value}."""
    rows = []
    for record in read_records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return rows


def logged_steps(wandb_dir: Path, run_id: str, exclude: Path | None = None) -> set[int]:
    """The history steps that the offline runs of `run_id` under wandb_dir already hold (`exclude`: the file
    the current process is writing)."""
    steps: set[int] = set()
    for path in sorted(wandb_dir.glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")):
        if exclude is not None and path.resolve() == exclude.resolve():
            continue
        steps |= {int(json.loads(row["_step"])) for row in history(path) if "_step" in row}
    return steps
