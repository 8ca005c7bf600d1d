"""method=qat: the weights it trains through are the export's fixed-point grid (BN folded), and it trains."""

import json

import torch

from spikesweep.export.chain import extract
from spikesweep.export.fixed_point import quantise
from spikesweep.methods.qat import QuantisationAware
from tests.conftest import REPO, SMOKE, run_cli
from tests.export.helpers import random_model


def test_qat_forward_is_the_exported_grid():
    """The QAT model (eval) computes what the float chain computes with the export's dequantised weights."""
    model, meta = random_model("model=small_cnn", "model.channels=[4,8]", "neuron.v_threshold=0.3")
    x = torch.rand(4, *meta.input_shape)
    chain = extract(model, meta, x)
    net = quantise(chain, x, bits=4)
    for lay, q in zip(chain.layers, net.layers):
        if q.weight is not None:  # dequantised weights, float biases: the chain on the export's grid
            lay.module.weight.data = torch.from_numpy(q.weight).float() * 2.0 ** -q.params["w_frac"]
    want = chain.run(chain.encode(x))
    qat = QuantisationAware(bits=4)
    qat.attach(model, torch.device("cpu"))
    keys = set(model.state_dict())
    with torch.no_grad():
        got = model(x)
    assert set(model.state_dict()) == keys and qat.layers == 3
    assert torch.allclose(got, want, atol=1e-4)
    with torch.no_grad():  # and 4 bits is not the float network
        plain, _ = random_model("model=small_cnn", "model.channels=[4,8]", "neuron.v_threshold=0.3")
        assert not torch.allclose(plain(x), got, atol=1e-3)


def test_qat_trains_and_its_run_exports(tmp_path):
    run = tmp_path / "qat"
    res = run_cli("train", *SMOKE, "model=small_cnn", "model.channels=[4,8]", "method=qat", "method.bits=4",
                  f"hydra.run.dir={run}", cwd=REPO)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    res = run_cli("export", str(run), "--to", "fpga", "--bits", "4", "--samples", "2", cwd=REPO)
    assert res.returncode == 0 and "quantised (integer simulator)" in res.stdout, res.stderr[-2000:]
