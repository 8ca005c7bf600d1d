"""Read pickled data files (CIFAR's batches) without running code from them.

Python's unpickler calls whatever a file names (`os.system`, `subprocess.Popen`, ...), so a crafted
`data_batch_1` runs a command as soon as it is read, checksums off or not. This one builds numpy arrays and
plain values (dicts, lists, strings, bytes, numbers) and refuses every other name in one line.
"""

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from spikesweep.data.registry import DataError

try:  # numpy >= 2 keeps them in numpy._core; pickles written by numpy 1 (CIFAR's own files) name numpy.core
    from numpy._core.multiarray import _reconstruct, scalar
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct, scalar
    from numpy.core.numeric import _frombuffer


class _Refused(pickle.UnpicklingError):
    """The file names a callable outside ALLOWED."""


def _encode(text: str, encoding: str = "utf-8") -> bytes:
    """Protocol-2 pickles of bytes go through _codecs.encode(str, 'latin1'); no other codec is needed."""
    if encoding.replace("-", "").lower() not in ("latin1", "utf8"):
        raise _Refused(f"_codecs.encode with {encoding!r}")
    return codecs.encode(text, encoding)


ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # protocol 5
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _encode,
}


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[module, name]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def load(path: Path, fix: str = "replace it with the original", encoding: str = "latin1") -> Any:
    """The object pickled in `path`; DataError naming the file and `fix` when it is corrupt or would run code."""
    try:
        with open(path, "rb") as f:
            return _PlainDataUnpickler(f, encoding=encoding).load()
    except _Refused as err:
        raise DataError(
            f"{path} refused: it would call {err}, not only build data (a crafted file?): {fix}"
        ) from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{path} is corrupt ({type(err).__name__}: {err}): {fix}") from err
