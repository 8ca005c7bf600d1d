"""The batched STDP learner against spikingjelly's own STDPLearner, the rule it reimplements for speed."""

import pytest
import torch
from spikingjelly.activation_based import functional, layer, neuron
from spikingjelly.activation_based.learning import STDPLearner

from spikesweep.spiking.stdp import BatchedSTDPLearner, traces

SYNAPSES = {
    "conv2d_pad_stride": (lambda: layer.Conv2d(3, 5, 3, padding=1, stride=2, bias=False, step_mode="m"), (6, 2, 3, 9, 9)),
    "conv2d_reflect": (lambda: layer.Conv2d(2, 4, 3, padding=1, padding_mode="reflect", bias=False, step_mode="m"), (5, 2, 2, 7, 7)),
    "conv1d": (lambda: layer.Conv1d(3, 4, 3, padding=1, bias=False, step_mode="m"), (6, 2, 3, 10)),
    "linear": (lambda: layer.Linear(7, 4, bias=False, step_mode="m"), (6, 2, 7)),
}


def _pair(name):
    synapse, shape = SYNAPSES[name]
    torch.manual_seed(0)
    syn, sn = synapse(), neuron.IFNode(step_mode="m", v_threshold=0.5)
    bound = lambda w: w.clamp(-0.3, 0.3)  # noqa: E731 - a weight-dependent rule, not the identity
    reference = STDPLearner("m", syn, sn, 2.0, 100.0, f_pre=bound, f_post=bound)
    batched = BatchedSTDPLearner(syn, sn, 2.0, 100.0, f_pre=bound, f_post=bound)
    return syn, sn, reference, batched, shape


@pytest.mark.parametrize("name", SYNAPSES)
def test_update_equals_spikingjellys_over_records_and_carried_traces(name):
    """Two forward calls per step (records concatenate in time) and two steps (traces carry over)."""
    syn, sn, reference, batched, shape = _pair(name)
    for _ in range(2):
        for _ in range(2):
            sn(syn((torch.rand(shape) < 0.4).float()))
        expected, got = reference.step(on_grad=False), batched.step(on_grad=False)
        assert expected.abs().max() > 1
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(batched.trace_pre, reference.trace_pre, rtol=0, atol=0)
        torch.testing.assert_close(batched.trace_post, reference.trace_post, rtol=0, atol=0)
        functional.reset_net(sn)


def test_on_grad_subtracts_the_scaled_update_from_the_gradient():
    syn, sn, reference, batched, shape = _pair("conv2d_pad_stride")
    reference.disable()
    x = (torch.rand(shape) < 0.4).float()
    sn(syn(x))
    update = batched.step(on_grad=False, scale=0.5)
    batched.reset()
    functional.reset_net(sn)
    sn(syn(x))
    syn.weight.grad = torch.ones_like(syn.weight)
    assert batched.step(on_grad=True, scale=0.5) is None
    torch.testing.assert_close(syn.weight.grad, 1 - update)
    assert update.abs().max() > 0 and batched.step() is None  # nothing recorded since: no update, no error


def test_traces_follow_spikingjellys_euler_decay():
    spikes = torch.tensor([[1.0], [0.0], [0.0], [1.0]])
    every, last = traces(spikes, 2.0, torch.tensor([4.0]))
    assert every.squeeze(1).tolist() == [3.0, 1.5, 0.75, 1.375] and last.item() == 1.375


def test_mismatched_records_are_refused():
    syn, sn, _, batched, shape = _pair("linear")
    syn((torch.rand(shape) < 0.4).float())  # the neuron never ran: an input without its output
    with pytest.raises(RuntimeError, match="recorded inputs but"):
        batched.step()
