"""metrics.jsonl: one JSON object per epoch, the record `spikesweep compare` reads."""

import json
import os
from pathlib import Path
from typing import Any


class JsonlTracker:
    def __init__(self, path: Path, resume_from_step: int | None = None) -> None:
        """On resume, lines past the checkpoint's epoch are dropped so no epoch appears twice."""
        self.path = path
        if resume_from_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["epoch"] <= resume_from_step]
            path.write_text("".join(line + "\n" for line in kept))
        elif resume_from_step is None:
            path.write_text("")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"epoch": step, **metrics}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def finish(self, status: str) -> None:
        del status


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
