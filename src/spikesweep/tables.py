"""The one table writer: markdown for terminals and reports, CSV beside them. Imports nothing of ours."""

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def significant(value: Any) -> str:
    """Floats to 3 significant digits (speed-ups, milliseconds, rates); anything else as it prints."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def result(value: Any) -> str:
    """Results for people: "-" for none; 2 decimals from 0.1 up (accuracies, seconds); below, 3 significant
    digits (a firing rate of 0.0828, an energy of 0.000712), never a 0.00 that hides the value."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.3g}"
    return str(value)


def energy_unit(values_mj: Sequence[float | None]) -> tuple[str, float]:
    """The unit that shows energies per sample (given in mJ) without a run of zeros: (name, factor from mJ)."""
    largest = max((abs(v) for v in values_mj if v is not None), default=1.0)
    if largest >= 1.0:
        return "mJ", 1.0
    return ("uJ", 1e3) if largest >= 1e-3 else ("nJ", 1e6)


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
