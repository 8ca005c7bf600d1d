"""One assembly path: a composed config becomes data, neuron, model, method and task in one place, and the
dataset's meta can come from its config alone (what `info`, `bench model` and `import-ckpt` need)."""

from pathlib import Path

import pytest

from spikesweep.assemble import assemble
from spikesweep.data import DataError, meta_from_config
from spikesweep.data.imagenet_classes import SUBSETS
from spikesweep.protocols import Task
from tests.conftest import compose, run_cli
from tests.data import fixtures

NO_MD5 = "dataset.verify_checksums=false"  # fixtures cannot match the real archives' md5


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("assemble")
    fixtures.make_cifar10(root)
    fixtures.make_mnist(root)
    fixtures.make_shd(root)
    fixtures.make_cifar10_dvs(root)
    fixtures.make_imagenet(root, list(SUBSETS["imagenette10"]))
    return root


@pytest.mark.parametrize(
    ("dataset", "extra"),
    [("digits", ()), ("mnist", ()), ("cifar10", (NO_MD5,)), ("imagenet_subset", ()), ("shd", ()),
     ("cifar10_dvs", ("dataset.size=32", "dataset.T=4"))],
)
def test_the_config_meta_is_the_data_meta(data_dir, dataset, extra):
    """The meta a model is sized by is the same whether the files are read or not."""
    cfg = compose(f"dataset={dataset}", f"paths.data_dir={data_dir}", "model=spiking_mlp", *extra)
    parts = assemble(cfg)
    from_data = parts.data.meta
    from_config = meta_from_config(cfg.dataset)
    assert (from_config.num_classes, from_config.input_shape, from_config.time_steps, from_config.temporal) == (
        from_data.num_classes, from_data.input_shape, from_data.time_steps, from_data.temporal)
    assert assemble(cfg, with_data=False).data is None


def test_a_config_that_misstates_the_data_is_refused(data_dir):
    cfg = compose("dataset=digits", "dataset.temporal=true", f"paths.data_dir={data_dir}")
    with pytest.raises(DataError, match="dataset.temporal=True but digits yields static samples"):
        assemble(cfg)


def test_the_assembly_holds_the_configured_task_and_method():
    parts = assemble(compose("dataset=digits"), with_data=False)
    assert isinstance(parts.task, Task) and parts.task.name == "classification"
    assert parts.method is None  # bptt is the absence of a method
    with pytest.raises(ValueError, match="unknown task .segmentation.; valid: classification"):
        assemble(compose("dataset=digits", "task.name=segmentation"), with_data=False)


def test_info_needs_no_dataset_files(tmp_path):
    """`info` sizes the model from the dataset's config: no CIFAR-10 on disk, and it still answers."""
    out = run_cli("info", "model=msresnet18", "dataset=cifar10", f"paths.data_dir={tmp_path / 'empty'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "msresnet18 on cifar10" in out.stdout and "params" in out.stdout
