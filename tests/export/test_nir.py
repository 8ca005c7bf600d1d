"""`export --to nir`, read back by a library no one here wrote (snntorch's NIR import): equal outputs.

snntorch imports NIR LIF as its Leaky with hard reset to zero and assumes dt = 1e-4 s (our default); it
imports NIR IF as a leaky neuron (beta 0.9) and has no soft reset, so only LIF with v_reset = 0 can match
there; IF and soft reset are exported by NIR's definitions (export/nir.py) and checked on the graph itself.
"""

import numpy as np
import pytest
import torch

pytest.importorskip("snntorch")
import nir  # noqa: E402
import snntorch.utils  # noqa: E402
from snntorch.import_nir import import_from_nir  # noqa: E402

from spikesweep.export.chain import UnsupportedModel, extract  # noqa: E402
from spikesweep.export.nir import write_nir  # noqa: E402
from tests.export.helpers import random_model  # noqa: E402


def _snntorch_run(graph, x_seq: torch.Tensor) -> torch.Tensor:
    """One sample at a time: snntorch applies NIR's unbatched Flatten(start_dim=0) to its batched tensors."""
    net = import_from_nir(graph)
    outs = []
    for b in range(x_seq.shape[1]):
        snntorch.utils.reset(net)
        outs.append(torch.stack([net(x_seq[t, b:b + 1])[0].reshape(-1) for t in range(x_seq.shape[0])]))
    return torch.stack(outs, 1).detach()


@pytest.mark.parametrize("overrides", [
    # conv + BN (folded) + LIF + avgpool + flatten + affine head: the STDBP ANN2SNN net trained directly
    ("model=mnist_cnn", "model.activation=spiking", "dataset=mnist", "neuron=lif", "neuron.v_threshold=0.15"),
    # linear + BN1d + LIF without decay_input (NIR r = tau), tau 4
    ("model=spiking_mlp", "model.hidden=[32]", "neuron=lif", "neuron.decay_input=false", "neuron.tau=4.0",
     "neuron.v_threshold=0.3"),
])
def test_snntorch_reads_our_graph_with_equal_outputs(tmp_path, overrides):
    model, meta = random_model(*overrides)
    x = torch.rand(3, *meta.input_shape)
    chain = extract(model, meta, x)
    graph = nir.read(write_nir(chain, tmp_path / "net.nir"))
    assert graph.metadata["dt"] == pytest.approx(1e-4) and graph.metadata["time_steps"] == meta.time_steps
    x_seq = chain.encode(x)
    outs = chain.run(x_seq, keep=True)
    spikes = [o for o, lay in zip(outs, chain.layers) if lay.kind == "neuron"]
    assert all(0.02 < s.mean() < 0.9 for s in spikes), "the test needs spiking activity to mean anything"
    got = _snntorch_run(graph, x_seq)
    assert torch.allclose(got, outs[-1], atol=1e-5), (got - outs[-1]).abs().max()
    with torch.no_grad():
        assert torch.allclose(model(x), outs[-1], atol=1e-5)  # and the chain is the model


def test_if_soft_reset_by_nir_definitions(tmp_path):
    model, meta = random_model("model=spiking_mlp", "model.hidden=[8]", "neuron=if", "neuron.v_reset=null")
    graph = nir.read(write_nir(extract(model, meta), tmp_path / "if.nir"))
    node = graph.nodes["2_neuron"]
    assert isinstance(node, nir.IF) and np.all(node.r == 1) and node.metadata["reset"] == "subtract"


def test_maxpool_over_spikes_is_sumpool_then_threshold(tmp_path):
    """NIR has no max-pool node; over 0/1 spikes max = (sum > 0.5). snntorch imports neither node, so this
    checks the identity on the chain's own spikes and NIR's type inference on the written graph."""
    model, meta = random_model("model=small_cnn", "model.channels=[4,8]", "neuron.v_threshold=0.3")
    chain = extract(model, meta)
    graph = nir.read(write_nir(chain, tmp_path / "x.nir"))
    sum_node, any_node = graph.nodes["4_maxpool_sum"], graph.nodes["4_maxpool_any"]
    assert isinstance(sum_node, nir.SumPool2d) and isinstance(any_node, nir.Threshold)
    assert ("4_maxpool_sum", "4_maxpool_any") in graph.edges and ("4_maxpool_any", "5_flatten") in graph.edges
    spikes = chain.run(chain.encode(torch.rand(3, *meta.input_shape)), keep=True)[3].flatten(0, 1)
    assert 0.02 < spikes.mean() < 0.9
    k = tuple(int(v) for v in sum_node.kernel_size)
    as_nir = (torch.nn.functional.avg_pool2d(spikes, k) * k[0] * k[1] > torch.from_numpy(any_node.threshold)).float()
    assert torch.equal(as_nir, torch.nn.functional.max_pool2d(spikes, k))


def test_maxpool_over_analog_input_refused_for_nir(tmp_path):
    from spikesweep.export.chain import Chain, Layer

    model, meta = random_model("model=small_cnn", "model.channels=[4,8]")
    layers = extract(model, meta).layers
    pool = next(lay for lay in layers if lay.kind == "maxpool")
    chain = Chain([Layer(pool.name, "maxpool", pool.module, (8, 8, 8), (8, 4, 4))], 4, "direct", False)
    with pytest.raises(UnsupportedModel, match=r"'features.6' \(MaxPool2d\) over non-spike input.*--to fpga"):
        write_nir(chain, tmp_path / "x.nir")


def test_unsupported_layer_refused_in_one_line():
    model, meta = random_model("model=small_cnn", "model.channels=[4,8]", "neuron=psn")
    with pytest.raises(UnsupportedModel) as err:
        extract(model, meta)
    assert "\n" not in str(err.value) and "'features.2' (PSN)" in str(err.value)
