"""One job of each family of named multiruns runs for real under `debug=smoke`, on fixtures written in
each dataset's on-disk format (tests/data/fixtures.py)."""

from pathlib import Path

import pytest

from spikesweep.run import train
from spikesweep.sweeps import catalogue
from tests.conftest import compose
from tests.data import fixtures

TINY = ("debug=smoke", "logger=none", "trainer.max_steps_per_epoch=1", "trainer.batch_size=2",
        "trainer.eval_batch_size=16", "trainer.num_workers=0")
CASES = {
    "sdtv3_reproduce": ("dataset.verify_checksums=false",),
    "sdtv3_learnable_norm": ("dataset.verify_checksums=false", "experiment=sdtv3_s_cifar10"),
    "gac_cifar": ("dataset.verify_checksums=false",),
    "survey_cf10_neurons": ("dataset.verify_checksums=false", "survey_cell=osr"),
    "survey_shd_neurons": ("survey_cell=tebn",),
    "shd_delays": (),
    "spikingformer_cifar": ("dataset.verify_checksums=false",),
    "spikingformer_dvs": ("dataset.size=32", "dataset.T=2"),
    "stdbp_methods": ("method.time_steps=[2]", "method.modes=[max]"),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    fixtures.make_cifar10(root)
    fixtures.make_mnist(root)
    fixtures.make_shd(root)
    fixtures.make_cifar10_dvs(root)
    return root


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_job_of_each_family_runs(name, data_dir, tmp_path):
    first = catalogue.grid(catalogue.load(name).params)[0]
    extra = CASES[name]
    job = [o for o in first if o.split("=")[0] not in {e.split("=")[0] for e in extra}]
    overrides = [f"+experiments={name}", *job, *extra, *TINY, f"paths.data_dir={data_dir}",
                 f"paths.cache_dir={tmp_path / 'cache'}"]
    summary = train(compose(*overrides), tmp_path / "run", overrides)
    assert summary["status"] == "completed", summary.get("error")
    assert summary["final"]["test_top1"] >= 0
