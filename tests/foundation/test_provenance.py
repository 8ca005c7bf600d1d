"""Each run records its environment and, for splits we make, a hash of its sample lists; compare flags
runs of one sweep that differ in either."""

import json
from pathlib import Path

from torch.utils.data import Subset

from spikesweep.data.events import FrameFiles
from spikesweep.provenance import pip_freeze, sample_list, split_hash
from spikesweep.sweeps.compare import compare


def _frames(root: str, names: list[str]) -> FrameFiles:
    return FrameFiles([(Path(root) / "cache_T16" / name.split("_")[0] / f"{name}.npz", i % 2) for i, name in
                       enumerate(names)], T=16)


def test_split_hash_is_of_the_sample_lists_not_of_where_they_live():
    train, test = _frames("/a", ["cat_1", "dog_2", "cat_3"]), _frames("/a", ["dog_4"])
    same_elsewhere = _frames("/b/other", ["cat_1", "dog_2", "cat_3"]), _frames("/b/other", ["dog_4"])
    swapped = _frames("/a", ["cat_1", "dog_2"]), _frames("/a", ["cat_3", "dog_4"])
    assert sample_list(test) == ["dog/dog_4 0"]
    assert split_hash(train, test) == split_hash(*same_elsewhere) != split_hash(*swapped)
    assert len(split_hash(train, test)) == 16
    assert sample_list(Subset(Subset(train, [2, 0]), [1])) == ["cat/cat_1 0"]  # through (nested) Subsets
    assert split_hash(list(range(3)), list(range(2))) is None  # in-memory data: no file list


def test_pip_freeze_lists_installed_distributions():
    lines = pip_freeze().splitlines()
    assert any(line.startswith("torch==") for line in lines) and lines == sorted(lines, key=str.lower)


def _run(root: Path, job: str, torch: str, split: str | None) -> None:
    run_dir = root / job
    run_dir.mkdir(parents=True)
    summary = {"status": "completed", "dataset": "cifar10_dvs", "split_hash": split, "final": {"test_top1": 50.0}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "env.json").write_text(json.dumps({"python": "3.12.3", "torch": torch, "executable": f"/{job}/python"}))
    (run_dir / "pip-freeze.txt").write_text(f"numpy==2.0.0\ntorch=={torch}\n")


def test_compare_flags_runs_produced_with_other_versions_or_splits(tmp_path):
    for job, torch, split in (("0", "2.14.1", "aaaa"), ("1", "2.14.1", "aaaa"), ("2", "2.15.0", "bbbb")):
        _run(tmp_path, job, torch, split)
    table, rows = compare(tmp_path)
    assert len(rows) == 3
    assert "warning: these runs were not produced alike" in table
    assert "- torch differs: 2.14.1 (job 0, 1); 2.15.0 (job 2)" in table
    assert "- package torch differs: 2.14.1 (job 0, 1); 2.15.0 (job 2)" in table
    assert "- split_hash of cifar10_dvs differs: aaaa (job 0, 1); bbbb (job 2)" in table
    assert "python" not in table.split("warning")[1] and "executable" not in table  # alike / machine-specific


def test_compare_of_alike_runs_has_no_warning(tmp_path):
    for job in ("0", "1"):
        _run(tmp_path, job, "2.14.1", "aaaa")
    assert "warning" not in compare(tmp_path)[0]
