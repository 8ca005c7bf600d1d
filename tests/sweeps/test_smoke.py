"""The first job of every named multirun runs for real under `debug=smoke`, on fixtures written in each
dataset's on-disk format (tests/data/fixtures.py)."""

from pathlib import Path

import pytest
import torch

from spikesweep.data.imagenet_classes import SUBSETS
from spikesweep.data.registry import DatasetMeta
from spikesweep.models import build_model
from spikesweep.run import train
from spikesweep.spiking import build_neuron, build_surrogate
from spikesweep.sweeps import catalogue
from tests.conftest import compose
from tests.data import fixtures

TINY = ("debug=smoke", "logger=none", "trainer.max_steps_per_epoch=1", "trainer.batch_size=2",
        "trainer.eval_batch_size=16", "trainer.num_workers=0")
SMALL_IMAGENET = ("dataset.image_size=32",)
# multirun -> overrides that fit its first job to the fixtures; survey_speed's cells are benchmark runs
# (job=bench_neuron), run in tests/bench; stdbp_fpga_bits's are exports of a trained run, run in tests/export.
CASES = {
    "demo": (),
    "sdtv3_reproduce": ("dataset.verify_checksums=false",),
    "sdtv3_surrogates": SMALL_IMAGENET,
    "sdtv3_learnable_norm": ("dataset.verify_checksums=false", "recipe=sdtv3_s_cifar10"),
    "sdtv3_learnable_d": SMALL_IMAGENET,
    "sdtv3_position_encoding": SMALL_IMAGENET,
    "gac_cifar": ("dataset.verify_checksums=false",),
    "gac_imagenet": SMALL_IMAGENET,
    "gac_coding": ("dataset.verify_checksums=false",),
    "survey_cf10_neurons": ("dataset.verify_checksums=false", "survey_cell=osr"),
    "survey_scf10_neurons": ("dataset.verify_checksums=false",),
    "survey_shd_neurons": ("survey_cell=tebn",),
    "survey_distill": ("dataset.verify_checksums=false",),
    "survey_distill_feature": ("dataset.verify_checksums=false",),
    "surrogate_shapes": ("dataset.verify_checksums=false",),
    "shd_delays": (),
    "spikingformer_cifar": ("dataset.verify_checksums=false",),
    "spikingformer_dvs": ("dataset.size=32", "dataset.T=2"),
    "spikingformer_imagenet": SMALL_IMAGENET,
    "cml_downsampling": ("dataset.verify_checksums=false",),
    "stdbp_methods": ("method.time_steps=[2]", "method.modes=[max]"),
    "stdbp_ann2snn": ("method.time_steps=2",),
    "stdbp_tau": ("dataset.T=2",),
    "stdbp_stdp_tau": ("dataset.T=2",),
    "survey_gen1_neurons": ("dataset.T=1",),
    "survey_coco_neurons": ("dataset.train_split=train", "dataset.test_split=val", "dataset.image_size=64", "dataset.num_classes=3",
                            "dataset.T=1"),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    fixtures.make_cifar10(root)
    fixtures.make_mnist(root)
    fixtures.make_shd(root)
    fixtures.make_cifar10_dvs(root)
    fixtures.make_imagenet(root, list(SUBSETS["imagenette10"]))
    fixtures.make_coco(root)
    fixtures.make_gen1(root)
    return root


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    """An ANN teacher checkpoint for the distillation multiruns (survey_cf10 with ReLU, CIFAR10 shapes)."""
    cfg = compose("recipe=survey_cf10_ann")
    meta = DatasetMeta(10, (3, 32, 32), 1, False)
    model = build_model(cfg.model, build_neuron(cfg.neuron, build_surrogate(cfg.surrogate)), meta)
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    torch.save({"model": model.state_dict()}, path)
    return str(path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_job_of_every_named_multirun_runs(name, data_dir, teacher, tmp_path):
    first = catalogue.grid(catalogue.load(name).params)[0]
    extra = (*CASES[name], *((f"method.teacher_ckpt={teacher}",) if name.startswith("survey_distill") else ()))
    job = [o for o in first if o.split("=")[0] not in {e.split("=")[0] for e in extra}]
    overrides = [f"+experiments={name}", *job, *extra, *TINY, f"paths.data_dir={data_dir}",
                 f"paths.cache_dir={tmp_path / 'cache'}"]
    summary = train(compose(*overrides), tmp_path / "run", overrides)
    assert summary["status"] == "completed", summary.get("error")
    assert summary["final"][f"test_{summary['metric']}"] >= 0


def test_every_named_multirun_has_a_smoke_case():
    assert set(CASES) == set(catalogue.names()) - {"survey_speed", "stdbp_fpga_bits"}, "add the new multirun to CASES"
