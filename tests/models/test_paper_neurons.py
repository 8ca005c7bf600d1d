"""`model=X` alone brings the paper's neuron and surrogate (the model config's defaults list); a neuron= or
surrogate= on the command line, a recipe and a survey cell still choose their own."""

import pytest

from tests.conftest import compose

PAPER = {  # model -> (neuron config, surrogate)
    "msresnet18": ("gac_lif", "triangle"),  # GAC's CIFAR code: decay 0.5, threshold 1, ZIF
    "msresnet34": ("gac_lif_imagenet", "rectangle"),  # upstream's MS-ResNet34 exists only in its ImageNet code
    **{f"spikingformer_{s}": ("lif", "sigmoid") for s in ("2_256", "2_384", "4_256", "4_384", "8_384", "8_512", "8_768")},
    **{f"sdtv3_{s}": ("multispike", "ste") for s in "tsml"},
    "survey_cf10": ("lif", "atan"),
    "survey_scf10": ("lif", "atan"),
    "survey_shd": ("lif_shd", "atan"),
    **{f"ems_yolo_{s}": ("gac_lif_imagenet", "rectangle") for s in ("res10", "res34", "tiny")},  # EMS-YOLO's mem_update
}


def _neuron(cfg) -> str:
    """The neuron config chosen: gac_lif_imagenet and lif_shd name their family (gac_lif, lif) inside."""
    return {(0.25, "gac_lif"): "gac_lif_imagenet"}.get((cfg.neuron.get("decay"), cfg.neuron.name),
                                                      "lif_shd" if cfg.neuron.get("tau") == 1.005 else cfg.neuron.name)


@pytest.mark.parametrize("model", PAPER)
def test_a_papers_model_brings_its_neuron_and_surrogate(model):
    cfg = compose(f"model={model}")
    assert (_neuron(cfg), cfg.surrogate.name) == PAPER[model]


def test_the_command_line_still_wins():
    cfg = compose("model=msresnet18", "neuron=lif")
    assert cfg.neuron.name == "lif" and cfg.surrogate.name == "triangle"
    cfg = compose("model=sdtv3_s", "neuron=lif", "surrogate=atan")
    assert (cfg.neuron.name, cfg.surrogate.name) == ("lif", "atan")
    assert compose("model=small_cnn").neuron.name == "lif"  # no paper: the global default


@pytest.mark.parametrize("overrides,neuron,surrogate", [
    (["recipe=gac_msresnet18_imagenet"], "gac_lif_imagenet", "rectangle"),  # msresnet18, the ImageNet neuron
    (["recipe=survey_cf10", "neuron=if"], "if", "atan"),
    (["recipe=survey_cf10", "survey_cell=clif"], "clif", "atan"),
    (["model=survey_cf10", "survey_cell=psn"], "psn", "atan"),
])
def test_recipes_and_survey_cells_choose_over_the_model(overrides, neuron, surrogate):
    cfg = compose(*overrides)
    assert (_neuron(cfg), cfg.surrogate.name) == (neuron, surrogate)
