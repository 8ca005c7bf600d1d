"""Weight memories as the FPGA tools read them: `$readmemh` hex (one two's-complement word per line) and
Xilinx `.coe` (radix 16, comma-separated vector), and the readers that parse them back."""

from pathlib import Path

import numpy as np


def _hex_digits(bits: int) -> int:
    return (bits + 3) // 4


def to_words(values: np.ndarray, bits: int) -> list[str]:
    flat = np.asarray(values, dtype=np.int64).reshape(-1)
    lim = 2 ** (bits - 1)
    if flat.size and (flat.min() < -lim or flat.max() >= lim):
        raise ValueError(f"values outside signed {bits}-bit range: {flat.min()}..{flat.max()}")
    return [format(int(v) & (2**bits - 1), f"0{_hex_digits(bits)}x") for v in flat]


def from_words(words: list[str], bits: int) -> np.ndarray:
    raw = np.array([int(w, 16) for w in words], dtype=np.int64)
    return np.where(raw >= 2 ** (bits - 1), raw - 2**bits, raw)


def write_mem(path: Path, values: np.ndarray, bits: int) -> None:
    path.write_text("\n".join(to_words(values, bits)) + "\n")


def write_coe(path: Path, values: np.ndarray, bits: int) -> None:
    words = to_words(values, bits)
    path.write_text(f"; {bits}-bit two's complement, {len(words)} words\nmemory_initialization_radix=16;\n"
                    "memory_initialization_vector=\n" + ",\n".join(words) + ";\n")


def read_mem(path: Path, bits: int) -> np.ndarray:
    words = [ln.split("//")[0].strip() for ln in path.read_text().splitlines()]
    return from_words([w for w in words if w and not w.startswith("@")], bits)


def read_coe(path: Path, bits: int) -> np.ndarray:
    lines = [ln.split(";")[0] if not ln.lstrip().startswith(";") else "" for ln in path.read_text().splitlines()]
    text = " ".join(lines)
    radix = text.split("memory_initialization_radix=")[1].split()[0]
    if radix != "16":
        raise ValueError(f"{path}: radix {radix}, expected 16")
    vector = text.split("memory_initialization_vector=")[1]
    return from_words([w.strip() for w in vector.replace("\n", " ").split(",") if w.strip()], bits)
