"""Neuron parameters: the core names every family takes, and a range check on every parameter of every family
(issue 19: `neuron.tau=0` was a ZeroDivisionError, `neuron.tau=-1` trained silently)."""

import math

import pytest
import torch

from spikesweep.spiking import build_neuron, build_surrogate
from spikesweep.spiking.neurons import CORE, NEURONS, RANGES, Range
from tests.conftest import run_cli

ATAN = build_surrogate({"name": "atan"})


def _bad_value(valid: Range):
    """A value just outside `valid`."""
    if valid.boolean:
        return 2
    if valid.choices:
        return "nope"
    if valid.integer and math.isfinite(valid.low):
        return valid.low + 0.5 if valid.low_open else valid.low - 1
    if math.isfinite(valid.low):
        return valid.low if valid.low_open else valid.low - 1
    if math.isfinite(valid.high):
        return valid.high + 1
    return float("nan")


def _every_parameter():
    for name in NEURONS.names():
        NEURONS.get(name)
        for key, valid in RANGES[name].items():
            yield pytest.param(name, key, valid, id=f"{name}.{key}")


@pytest.mark.parametrize(("name", "key", "valid"), list(_every_parameter()))
def test_every_parameter_is_range_checked_in_one_line(name, key, valid):
    value = _bad_value(valid)
    with pytest.raises(ValueError) as err:
        build_neuron({"name": name, key: value}, ATAN, time_steps=4)()
    assert str(err.value) == f"neuron '{name}': {key}={value!r} is out of range; valid: {valid}"


@pytest.mark.parametrize("backend", ["torch", "compile", "spikingjelly"])
@pytest.mark.parametrize("tau", [0, -1, 0.5])
def test_lif_tau_below_one_is_refused_at_build_time(tau, backend):
    with pytest.raises(ValueError, match=rf"neuron 'lif': tau={tau} is out of range; valid: \[1, inf\)"):
        build_neuron({"name": "lif", "tau": tau, "backend": backend}, ATAN)


def test_a_model_override_is_checked_too():
    factory = build_neuron({"name": "lif"}, ATAN)
    with pytest.raises(ValueError, match=r"v_threshold=-0.5 is out of range; valid: \(0, inf\)"):
        factory(v_threshold=-0.5)


@pytest.mark.parametrize("name", NEURONS.names())
def test_every_family_takes_the_core_names(name):
    neuron = build_neuron({"name": name}, ATAN)(v_threshold=0.5, time_steps=3, channels=4, norm_value=1.0)
    out = neuron(torch.rand(3, 2, 4) * 2)
    assert out.shape == (3, 2, 4)
    assert set(CORE) <= set(RANGES[name])


def test_a_binary_family_refuses_a_norm_with_the_reason():
    with pytest.raises(ValueError, match=r"norm_value=4.0 is out of range; valid: 1 or null \(binary spikes carry "
                                         r"the value 1; a Norm needs neuron=multispike\)"):
        build_neuron({"name": "gac_lif"}, ATAN)(norm_value=4.0)


def test_psn_threshold_is_the_initial_learnable_threshold():
    for name in ("psn", "sliding_psn", "masked_psn"):
        neuron = build_neuron({"name": name}, ATAN, time_steps=3)(v_threshold=0.5)
        assert torch.all(neuron.bias == -0.5)


def test_multispike_threshold_is_the_input_per_spike():
    neuron = build_neuron({"name": "multispike", "D": 4}, build_surrogate({"name": "ste", "D": 4}))
    x = torch.tensor([0.2, 0.6, 1.1, 5.0]).reshape(1, 1, 4)
    assert neuron(norm_value=1.0, v_threshold=0.5)(x).flatten().tolist() == [0.0, 1.0, 2.0, 4.0]


def test_cli_reports_a_bad_tau_in_one_line(tmp_path):
    out = run_cli("train", "neuron.tau=0", "trainer.epochs=1", "logger=none", cwd=tmp_path)
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: neuron 'lif': tau=0 is out of range; valid: [1, inf)"]
    assert "Traceback" not in out.stderr
