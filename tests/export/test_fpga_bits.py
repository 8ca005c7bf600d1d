"""The `stdbp_fpga_bits` named multirun: a trained STDBP MNIST run (real idx files, the real loader) exported at
4, 6, 8 and 16 bits by one sweep, each width judged by the integer simulator, gathered in one table and plot."""

import csv
import json

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.data import fixtures

EVAL = 8  # == golden samples: the evaluation then draws the same Poisson spikes as golden/input.npy


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    fixtures.make_mnist(data, per_class=2)
    run = tmp_path_factory.mktemp("run")
    res = run_cli("train", "recipe=stdbp_snn_scratch", "dataset.T=4", "trainer.epochs=1",
                  "trainer.max_steps_per_epoch=2", "trainer.batch_size=4", "logger=none", f"paths.data_dir={data}", f"hydra.run.dir={run}",
                  cwd=run)
    assert res.returncode == 0, res.stderr[-2000:]
    return run, data


def test_one_sweep_exports_every_width_and_gathers_them(trained, tmp_path):
    run, data = trained
    res = run_cli("sweep", "stdbp_fpga_bits", f"ckpt={run}", f"paths.data_dir={data}", f"export.eval_samples={EVAL}",
                  f"export.golden_samples={EVAL}", "export.calib_samples=8", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "4 succeeded, 0 failed" in res.stdout
    sweep_dir = next((tmp_path / "multirun" / "stdbp_fpga_bits").iterdir())
    rows = list(csv.DictReader((sweep_dir / "fpga_bits.csv").open()))
    assert [int(r["bits"]) for r in rows] == [4, 6, 8, 16] and (sweep_dir / "fpga_bits.png").stat().st_size > 0
    assert len({r["float_top1"] for r in rows}) == 1, "one network, one float accuracy"
    for row in rows:  # Linear 784 -> 10: W-bit weights and acc_bits-bit biases
        bits, acc = int(row["bits"]), int(row["acc_bits"])
        assert float(row["memory_kB"]) == round((7840 * bits + 10 * acc) / 8 / 1024, 3)
    for job in sorted(p for p in sweep_dir.iterdir() if (p / "summary.json").is_file()):
        export = json.loads((job / "summary.json").read_text())["export"]
        golden = job / "fpga" / "golden"
        spikes, out = np.load(golden / "input.npy"), np.load(golden / "L2_neuron.npy")
        labels = np.load(golden / "labels.npy")
        # independent of the simulator's counters: every input spike meets the 10 weights of its column once
        assert export["synops_per_sample"] == export["acs_per_sample"] == spikes.sum() * 10 / EVAL
        assert export["quantised_top1"] == 100 * np.mean(out.sum(axis=1).argmax(axis=1) == labels)
    report = run_cli("report", str(sweep_dir), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    text = (sweep_dir / "report" / "report.md").read_text()
    assert "## Fixed-point export per bit width" in text and "fpga_bits.png" in text
    assert (sweep_dir / "report" / "fpga_bits.png").is_file()


def test_the_sweep_without_a_checkpoint_fails_each_job_in_one_line(tmp_path):
    res = run_cli("sweep", "stdbp_fpga_bits", cwd=tmp_path)
    assert res.returncode == 1 and "0 succeeded, 4 failed" in res.stdout
    said = "job=export_fpga needs a trained run: ckpt=RUN_DIR"
    said_all = res.stdout + res.stderr
    assert said_all.count(said) == 4 and "Traceback" not in said_all
    for job in (next((tmp_path / "multirun" / "stdbp_fpga_bits").iterdir()) / str(i) for i in range(4)):
        summary = json.loads((job / "summary.json").read_text())
        assert summary["status"] == "failed" and said in summary["error"]
