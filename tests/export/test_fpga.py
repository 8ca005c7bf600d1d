"""`export --to fpga`: the integer simulator, reading only the package's files, reproduces the golden traces
of the fake-quantised torch model bit for bit, for every supported layer type; the memories parse back."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from spikesweep.assemble import assemble
from spikesweep.cli import main

from spikesweep.export import int_sim
from spikesweep.export.chain import extract
from spikesweep.export.fixed_point import fake_quant_run, quantise, quantise_input
from spikesweep.export.fpga_package import write_package
from spikesweep.export.memory_files import read_coe, read_mem, to_words
from tests.conftest import REPO, SMOKE, compose, run_cli
from tests.export.helpers import random_model

NETS = {
    # conv, BN folded, LIF (tau 2: a pure shift), avgpool (sum + frac), flatten, linear head with bias
    "mnist_cnn_lif": ("model=mnist_cnn", "model.activation=spiking", "dataset=mnist", "neuron=lif",
                      "neuron.v_threshold=0.15"),
    # PLIF (learnt tau: leak as multiply + shift), maxpool, the implicit flatten before the head
    "small_cnn_plif": ("model=small_cnn", "model.channels=[4,8]", "neuron=plif", "neuron.v_threshold=0.3"),
    # IF with soft reset, linear + BN1d
    "mlp_if_soft": ("model=spiking_mlp", "model.hidden=[32]", "neuron=if", "neuron.v_reset=null",
                    "neuron.v_threshold=0.3"),
    # LIF without decay_input, tau 3 (not a power of two), output layer of neurons, no bias anywhere
    "stdp_cnn_lif": ("model=mnist_stdp_cnn", "dataset=mnist", "model.channels=4", "model.hidden=16", "neuron=lif",
                     "neuron.decay_input=false", "neuron.tau=3.0", "neuron.v_threshold=0.3"),
}


@pytest.mark.parametrize("name", list(NETS))
def test_integer_simulator_bit_exact_on_golden_traces(tmp_path, name):
    model, meta = random_model(*NETS[name])
    x = torch.rand(6, *meta.input_shape)
    chain = extract(model, meta, x)
    net = quantise(chain, x, bits=8)
    x_int = quantise_input(net, chain, x)
    man = write_package(net, tmp_path, x_int, np.zeros(6))
    pkg = int_sim.load_package(tmp_path)  # the files alone
    got = int_sim.run(pkg, np.load(tmp_path / man["golden"]["input"]))
    golden = [np.load(tmp_path / f) for f in man["golden"]["layers"]]
    for lay, g, o in zip(man["layers"], golden, got, strict=True):
        assert o.shape == g.shape and np.array_equal(o, g), f"layer {lay['index']} {lay['kind']} differs"
    rates = [g.mean() for g, q in zip(golden, net.layers) if q.kind == "neuron"]
    assert all(0.01 < r < 0.9 for r in rates), f"the test needs spiking activity: rates {rates}"
    # the fixed point follows the float network: at 16 bits nearly every spike agrees
    net16 = quantise(chain, x, bits=16)
    q16 = fake_quant_run(net16, quantise_input(net16, chain, x))
    torch.manual_seed(0)
    floats = chain.run(chain.encode(x), keep=True)
    for q, f, o in zip(net16.layers, floats, q16):
        if q.kind == "neuron":
            assert (f.transpose(0, 1).numpy() == o).mean() > 0.97


def test_saturating_accumulator_bit_exact(tmp_path):
    """A narrow accumulator (bits + 3) saturates the convolutions and membranes; both paths clip alike."""
    model, meta = random_model(*NETS["mnist_cnn_lif"])
    x = torch.rand(4, *meta.input_shape)
    chain = extract(model, meta)
    net = quantise(chain, x, bits=6, acc_bits=9)
    man = write_package(net, tmp_path, quantise_input(net, chain, x), np.zeros(4))
    got = int_sim.run(int_sim.load_package(tmp_path), np.load(tmp_path / "golden" / "input.npy"))
    golden = [np.load(tmp_path / f) for f in man["golden"]["layers"]]
    assert all(np.array_equal(g, o) for g, o in zip(golden, got, strict=True))
    assert golden[0].max() == 255 or golden[0].min() == -256, "the accumulator should saturate here"


def test_package_covers_every_supported_layer_type():
    kinds = set()
    for overrides in NETS.values():
        model, meta = random_model(*overrides)
        for lay in extract(model, meta).layers:
            kinds.add(lay.kind if lay.kind != "neuron" else f"{lay.neuron.kind}:{'soft' if lay.neuron.v_reset is None else 'hard'}")
    assert kinds >= {"conv", "linear", "avgpool", "maxpool", "flatten", "lif:hard", "if:soft"}


def test_memories_parse_back_to_the_same_integers(tmp_path):
    model, meta = random_model(*NETS["small_cnn_plif"])
    net = quantise(extract(model, meta), torch.rand(4, *meta.input_shape), bits=6)
    x_int = quantise_input(net, extract(model, meta), torch.rand(2, *meta.input_shape))
    man = write_package(net, tmp_path, x_int, np.zeros(2))
    checked = 0
    for q, lay in zip(net.layers, man["layers"]):
        if q.weight is None:
            continue
        for key, want, bits in (("weight", q.weight, 6), ("bias", q.bias, net.acc_bits)):
            mem = lay[key]
            assert mem["bits"] == bits and mem["memory_bits"] == want.size * bits
            assert np.array_equal(read_mem(tmp_path / mem["mem"], bits).reshape(want.shape), want)
            assert np.array_equal(read_coe(tmp_path / mem["coe"], bits).reshape(want.shape), want)
            checked += 1
        assert q.weight.min() < 0 < q.weight.max() and np.abs(q.weight).max() <= 31
    assert checked == 6
    assert to_words(np.array([-1, -32, 31, 0]), 6) == ["3f", "20", "1f", "00"]
    with pytest.raises(ValueError, match="outside signed 6-bit"):
        to_words(np.array([32]), 6)


@pytest.fixture(scope="module")
def trained_mlp(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    res = run_cli("train", *SMOKE, "model=spiking_mlp", "model.hidden=[16]", "neuron=lif", f"hydra.run.dir={run}",
                  cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    return run


def test_cli_exports_a_trained_run_to_both_targets(trained_mlp, capsys):
    assert main(["export", str(trained_mlp), "--to", "fpga", "--bits", "6", "--samples", "4"]) == 0
    out = trained_mlp / "export" / "fpga_6b"
    man = json.loads((out / "manifest.json").read_text())
    assert man["bits"] == 6 and man["golden"]["samples"] == 4 and (out / "params.vh").is_file()
    report = json.loads((out / "report.json").read_text())
    assert 0 <= report["quantised_accuracy"] <= 1 and "quantised (integer simulator)" in capsys.readouterr().out
    assert main(["export", str(trained_mlp), "--to", "nir"]) == 0
    assert (trained_mlp / "export" / "net.nir").is_file()


def test_cli_refuses_an_unsupported_model_in_one_line(tmp_path, capsys):
    cfg = compose("model=small_cnn", "model.channels=[4,8]", "neuron=psn")
    parts = assemble(cfg, with_data=False, eager=True)
    torch.save({"model": parts.model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True)},
               tmp_path / "psn.pt")
    assert main(["export", str(tmp_path / "psn.pt"), "--to", "fpga"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "unsupported layer 'features.2' (PSN)" in err
