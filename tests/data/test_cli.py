"""`spikesweep prepare` and `spikesweep bench data` on fixture datasets."""

import json

import pytest
from omegaconf import OmegaConf

from spikesweep import cli
from spikesweep.bench.data import bench_data
from tests.conftest import REPO, compose, run_cli
from tests.data import fixtures


def test_prepare_builds_the_frame_cache_and_reports_throughput(tmp_path):
    fixtures.make_dvs128_gesture(tmp_path)
    result = run_cli("prepare", "dataset=dvs128_gesture", f"paths.data_dir={tmp_path}",
                     f"paths.cache_dir={tmp_path / 'cache'}", "dataset.size=32", "dataset.T=8", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "dvs128_gesture: 11 train / 11 test samples, 11 classes, [2, 32, 32] per step, T=8" in result.stdout
    assert "samples/s" in result.stdout and "events/s" in result.stdout
    (folder,) = [p for p in (tmp_path / "cache" / "frames").iterdir() if p.is_dir()]
    stats = json.loads((folder / "prepare.json").read_text())
    assert stats["options"] == {"dataset": "dvs128_gesture", "T": 8, "split_by": "number", "duration": None,
                                "size": 32, "format": 1}
    assert len(list(folder.glob("*/*/*.npz"))) == 22


def test_prepare_reports_missing_files_in_one_line(tmp_path, capsys):
    assert cli.main(["prepare", "dataset=mnist", f"paths.data_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "train-images-idx3-ubyte.gz not found" in err and "\n" not in err


def test_bench_data_compares_loader_and_step(tmp_path):
    fixtures.make_cifar10(tmp_path, per_class=2)
    cfg = compose("dataset=cifar10", f"paths.data_dir={tmp_path}", "dataset.verify_checksums=false",
                  "trainer.batch_size=8", "trainer.device=cpu", "model.channels=[4,8]")
    result = bench_data(cfg, batches=2)
    assert result["batches"] == 2 and result["loader_samples_per_s"] > 0 and result["step_samples_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["loader_samples_per_s"] / result["step_samples_per_s"], rel=0.05)
    assert OmegaConf.select(cfg, "dataset.name") == result["dataset"]
