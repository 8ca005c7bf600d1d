"""The one table writer: markdown for terminals and reports, CSV beside them. Imports nothing of ours."""

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def significant(value: Any) -> str:
    """Floats to 3 significant digits (speed-ups, milliseconds, rates); anything else as it prints."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
             fmt: Callable[[Any], str] = significant) -> str:
    """A markdown table of `rows` (columns: the first row's keys unless given; a missing cell is None)."""
    columns = list(columns or rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows])


def write_csv(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str] | None = None) -> None:
    """`rows` as CSV at `path` (its folder made if needed); columns as in `markdown`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns or rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
