"""Every named multirun composes every one of its jobs, and each job really carries its axis values."""

import pytest

from omegaconf import OmegaConf

from spikesweep.config_schema import validate
from spikesweep.sweeps import catalogue
from tests.conftest import compose, run_cli

GROUPS = {"model", "neuron", "surrogate", "dataset", "optimizer", "method", "survey_cell"}
# Every row of the seed documents' ablation table has a named multirun.
REQUIRED = {
    "sdtv3_reproduce", "sdtv3_surrogates", "sdtv3_learnable_norm", "sdtv3_learnable_d", "sdtv3_position_encoding",
    "gac_cifar", "gac_imagenet", "gac_coding", "survey_cf10_neurons", "survey_scf10_neurons", "survey_shd_neurons",
    "survey_distill", "shd_delays", "surrogate_shapes", "spikingformer_cifar", "spikingformer_dvs",
    "spikingformer_imagenet", "cml_downsampling", "stdbp_ann2snn", "stdbp_methods", "stdbp_tau", "stdbp_fpga_bits",
}
#: what a named multirun needs from its user before it composes (a trained run to export)
GIVEN = {"stdbp_fpga_bits": ("ckpt=run",)}


def test_the_catalogue_covers_every_ablation():
    assert REQUIRED <= set(catalogue.names())


@pytest.mark.parametrize("name", catalogue.names())
def test_every_job_composes_with_its_axis_values(name):
    sweep = catalogue.load(name)
    assert sweep.description and sweep.job_count >= 1
    for job in catalogue.grid(sweep.params):
        cfg = compose(f"+experiments={name}", *job, *GIVEN.get(name, ()))
        validate(cfg)
        assert cfg.name == name, "runs of a named multirun land under multirun/<name>/"
        for override in job:
            key, value = override.split("=", 1)
            if key == "recipe":
                got = cfg.recipe  # the recipe's own keys are checked in tests/models/test_recipes.py
            else:
                got = cfg[key].name if key in GROUPS else OmegaConf.select(cfg, key)
            assert str(got) == value, (name, override, got)


def test_integer_surrogate_follows_the_neuron_d():
    cfg = compose("+experiments=sdtv3_learnable_d", "recipe=sdtv3_s_imagenet10", "neuron.D=8")
    assert cfg.surrogate.D == 8


def test_list_shows_every_named_multirun(tmp_path):
    out = run_cli("list", cwd=tmp_path)
    assert out.returncode == 0
    for name in REQUIRED:
        assert name in out.stdout


@pytest.mark.parametrize(
    "name", ["survey_cf10_neurons", "survey_scf10_neurons", "survey_shd_neurons", "sdtv3_surrogates", "surrogate_shapes"]
)
def test_neuron_and_surrogate_sweeps_build_every_neuron(name):
    """A recipe's settings for its default neuron or surrogate must not leak into the ones a sweep swaps in."""
    from spikesweep.spiking import build_neuron, build_surrogate

    for job in catalogue.grid(catalogue.load(name).params):
        cfg = compose(f"+experiments={name}", *job)
        neuron = build_neuron(cfg.neuron, build_surrogate(cfg.surrogate), time_steps=cfg.dataset.T)
        neuron(channels=8)


def test_surrogate_shapes_cover_every_binary_surrogate_at_every_width():
    """Each job's width reaches the built surrogate: within a shape, every width gives another gradient."""
    import torch

    from spikesweep.spiking import build_surrogate
    from spikesweep.spiking.surrogate import is_integer, surrogate_names

    x = torch.linspace(-3.0, 3.0, 601)
    grads: dict[str, list[torch.Tensor]] = {}
    for job in catalogue.grid(catalogue.load("surrogate_shapes").params):
        cfg = compose("+experiments=surrogate_shapes", *job)
        u = x.clone().requires_grad_(True)
        build_surrogate(cfg.surrogate)(u).sum().backward()
        grads.setdefault(cfg.surrogate.name, []).append(u.grad)
    binary = {n for n in surrogate_names() if not is_integer(build_surrogate({"name": n}))}
    assert set(grads) == binary
    for name, by_width in grads.items():
        assert len(by_width) == 3, name
        assert all(not torch.allclose(a, b) for i, a in enumerate(by_width) for b in by_width[i + 1:]), name


def test_spikingformer_sizes_build_under_the_sweep():
    from spikesweep.assemble import assemble

    for job in catalogue.grid(catalogue.load("spikingformer_cifar").params):
        assemble(compose("+experiments=spikingformer_cifar", *job, "dataset.T=1"), with_data=False)


ROWS = {  # survey row -> (neuron, norm, method); None: the recipe's own neuron
    "if": ("if", "bn", "bptt"), "lif": (None, "bn", "bptt"), "clif": ("clif", "bn", "bptt"),
    "psn": ("psn", "bn", "bptt"), "sliding_psn": ("sliding_psn", "bn", "bptt"), "tebn": (None, "tebn", "bptt"),
    "osr": ("osr", "bn", "online"), "osr_bptt": ("osr", "bn", "bptt"), "block_alif": ("block_alif", "bn", "bptt"),
}


@pytest.mark.parametrize(
    ("name", "recipe_lif_tau"),
    [("survey_cf10_neurons", 2.0), ("survey_scf10_neurons", 2.0), ("survey_shd_neurons", 1.005)],
)
def test_survey_rows_set_neuron_norm_and_paradigm_together(name, recipe_lif_tau):
    from spikesweep.methods import build_method
    from tests.models.helpers import recipe_model

    sweep = catalogue.load(name)
    for job in catalogue.grid(sweep.params):
        cfg = compose(f"+experiments={name}", *job)
        row = cfg.survey_cell.name
        neuron, norm, method = ROWS[row]
        assert (cfg.neuron.name, cfg.model.norm, cfg.method.name) == (neuron or "lif", norm, method), job
        if neuron is None:
            assert cfg.neuron.tau == recipe_lif_tau, "the LIF and TEBN rows keep the recipe's own LIF"
        assert f"survey_cell={row}" in sweep.reported, f"row {row} has no paper number"
        if method == "online":  # the model really steps online with this neuron
            build_method(cfg.method, cfg.model, None, None).attach(recipe_model(cfg), None)
