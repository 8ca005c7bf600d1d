"""The package's reference Verilog layer, simulated with Icarus Verilog (installed by `make install` / .ci/run),
reproduces the golden output spikes of one exported layer bit for bit."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from spikesweep.export.chain import extract
from spikesweep.export.fixed_point import quantise, quantise_input
from spikesweep.export.fpga_package import write_package
from tests.export.helpers import random_model

if shutil.which("iverilog") is None:
    if os.environ.get("SPIKESWEEP_REQUIRE_IVERILOG") == "1":
        raise RuntimeError("SPIKESWEEP_REQUIRE_IVERILOG=1 but iverilog is missing: run `make install` as root")
    pytest.skip("no iverilog: `make install` (as root) installs Debian's iverilog", allow_module_level=True)


@pytest.mark.parametrize("overrides", [
    # Poisson spikes into Linear 784 -> 10 + LIF, tau 3: the leak is a multiply + shift
    ("model=mnist_fc", "dataset=mnist", "neuron=lif", "neuron.tau=3.0", "neuron.v_threshold=0.1"),
    # the STDP net's hidden layer: max-pooled conv spikes into Linear -> IF with soft reset
    ("model=mnist_stdp_cnn", "dataset=mnist", "model.channels=4", "model.hidden=16", "neuron=if",
     "neuron.v_reset=null", "neuron.v_threshold=0.2"),
])
def test_verilog_layer_bit_exact_on_golden_spikes(tmp_path, overrides):
    model, meta = random_model(*overrides)
    x = torch.rand(4, *meta.input_shape)
    chain = extract(model, meta, x)
    net = quantise(chain, x, bits=8)
    torch.manual_seed(0)
    man = write_package(net, tmp_path, quantise_input(net, chain, x), np.zeros(4))
    res = subprocess.run(man["hdl"]["run"], shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r"CHECKED (\d+) SPIKES (\d+) MISMATCHES (\d+) MEMBRANE_MISMATCHES (\d+)", res.stdout)
    checked, spikes, bad, bad_v = map(int, found.groups())
    golden = np.load(tmp_path / man["golden"]["layers"][man["hdl"]["neuron"]])
    assert checked == golden.size and spikes == golden.sum() and bad == 0 and bad_v == 0
    assert 0.05 < spikes / checked < 0.9, "the test needs spiking activity to mean anything"
