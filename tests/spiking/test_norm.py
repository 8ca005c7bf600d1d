"""BN and TEBN for multi-step tensors: shared statistics over T and B, TEBN's per-step scale, misuse."""

import pytest
import torch

from spikesweep.spiking.norm import TEBN1d, TEBN2d, build_norm


def test_statistics_are_shared_over_time_and_batch():
    x = torch.randn(3, 4, 2, 5, 5)
    x[1] += 10.0  # a per-step norm would erase this offset; shared statistics keep step 1 above the others
    for kind in ("bn", "tebn"):
        y = build_norm(kind, 2, 2, 3)(x)
        assert torch.allclose(y.mean(dim=(0, 1, 3, 4)), torch.zeros(2), atol=1e-5)
        assert y[1].mean() > 1.0 > y[0].mean()


def test_tebn_is_bn_times_a_learnable_scale_per_step():
    x = torch.randn(3, 4, 6)
    bn, tebn = build_norm("bn", 1, 6, 3), build_norm("tebn", 1, 6, 3)
    assert isinstance(tebn, TEBN1d) and torch.equal(tebn(x), bn(x))  # scale starts at 1
    with torch.no_grad():
        tebn.scale.copy_(torch.tensor([0.5, 2.0, -1.0]))
    y = tebn(x)
    assert torch.allclose(y, bn(x) * torch.tensor([0.5, 2.0, -1.0]).view(3, 1, 1), atol=1e-6)
    y.sum().backward()
    assert tebn.scale.grad.shape == (3,) and tebn.scale.grad.abs().sum() > 0
    n_bn, n_tebn = (sum(p.numel() for p in m.parameters()) for m in (bn, tebn))
    assert n_tebn == n_bn + 3


def test_tebn_over_conv1d_features():
    assert build_norm("tebn", 1, 8, 5)(torch.randn(5, 2, 8, 7)).shape == (5, 2, 8, 7)
    assert isinstance(build_norm("tebn", 2, 8, 5), TEBN2d)


@pytest.mark.parametrize(
    ("args", "x", "message"),
    [
        (("tebn", 2, 3, 4), torch.zeros(6, 2, 3, 4, 4), r"TEBN was built for T=4 steps but got 6"),
        (("ln", 2, 3, 4), None, "unknown norm 'ln'; valid: bn, tebn"),
        (("bn", 3, 3, 4), None, "dims must be 1 or 2"),
        (("tebn", 1, 3, 0), None, "needs the number of time steps"),
    ],
)
def test_misuse_fails_with_one_line(args, x, message):
    with pytest.raises(ValueError, match=message):
        build_norm(*args)(x)
