"""YOLOv5-style loss: a case computed by hand, target assignment, rows that must not teach."""

import math

import pytest
import torch
from torch.nn import functional as F

from spikesweep.tasks.detection_boxes import HeadLayout
from spikesweep.tasks.detection_loss import YoloLoss, loss_targets, scaled_gains

# One scale, stride 8 on a 32 x 32 input: a 4 x 4 grid, one 16 x 16 anchor (2 x 2 cells), two classes.
LAYOUT = HeadLayout.build([[16, 16]], [8], (32, 32))
GAINS = (0.05, 1.0, 0.5)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def head(batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, 16, 7)  # [B, P = 1 anchor * 4 * 4, 5 + 2]


def test_hand_computed_loss():
    """A 24 x 24 box centred on cell (1, 1) (grid centre 1.5: no neighbour is close enough): all raw box
    outputs 0 predict a 2 x 2-cell box at the same centre, so CIoU = IoU = 4/9 (same centre and aspect)."""
    out = head()
    cell = 1 * 4 + 1  # row 1, column 1
    out[0, cell, 4] = 2.0  # objectness logit
    out[0, cell, 5:] = torch.tensor([1.0, -1.0])  # class logits; the box is class 0
    targets = torch.tensor([[[0.0, 0.0, 0.0, 24.0, 24.0, 0.0]]])
    loss = YoloLoss(LAYOUT, 2, GAINS)(out, targets)

    ciou = 4 / 9
    box = 1 - ciou
    # BCE(logit 0, any target) = ln 2 for the 15 other cells; at the box's cell BCE(2, ciou) = softplus(2) - 2 ciou
    obj = 4.0 * (15 * math.log(2) + softplus(2.0) - 2.0 * ciou) / 16  # 4.0: upstream's weight of a lone scale
    cls = (softplus(-1.0) + softplus(-1.0)) / 2  # BCE(1, 1) and BCE(-1, 0), mean over the 2 classes
    expected = 0.05 * box + 1.0 * obj + 0.5 * cls
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_loss_is_summed_over_images_and_ignores_padding_and_crowds():
    out = torch.randn(1, 16, 7)
    box = torch.tensor([[1.0, 2.0, 3.0, 20.0, 25.0, 0.0]])
    extra = torch.tensor([[-1.0] * 6, [0.0, 5.0, 5.0, 30.0, 30.0, 1.0]])  # padding, a crowd region
    criterion = YoloLoss(LAYOUT, 2, GAINS)
    alone = criterion(out, box[None])
    assert criterion(out, torch.cat((box, extra))[None]).item() == pytest.approx(alone.item(), rel=1e-6)
    twice = criterion(out.repeat(2, 1, 1), box[None].repeat(2, 1, 1))
    assert twice.item() == pytest.approx(2 * alone.item(), rel=1e-6)  # upstream's scale: x batch size


def test_no_boxes_teaches_only_objectness_towards_zero():
    out = torch.randn(2, 16, 7, requires_grad=True)
    loss = YoloLoss(LAYOUT, 2, GAINS)(out, torch.full((2, 1, 6), -1.0))
    expected = 2 * 4.0 * F.binary_cross_entropy_with_logits(out[..., 4], torch.zeros(2, 16))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert out.grad[..., :4].abs().sum() == 0 and out.grad[..., 5:].abs().sum() == 0


def test_assignment_takes_the_two_nearest_neighbours_and_matching_anchors():
    """Centre (10, 10) px = grid (1.25, 1.25): its cell, the cell to the left and the one above. Of anchors
    8 x 8, 16 x 16 and 128 x 128 px, the last is more than 4x the 20 x 20 box and learns nothing."""
    layout = HeadLayout.build([[8, 8, 16, 16, 128, 128]], [8], (32, 32))
    image, _, xywh = loss_targets(torch.tensor([[[0.0, 0.0, 0.0, 20.0, 20.0, 0.0]]]))
    m = YoloLoss(layout, 2, GAINS).assign(image, xywh / 8, layout.anchors[0] / 8, (4, 4))
    cells = {(a, r, c) for a, r, c in zip(m.anchor.tolist(), m.row.tolist(), m.col.tolist())}
    assert cells == {(a, r, c) for a in (0, 1) for r, c in ((1, 1), (1, 0), (0, 1))}
    assert torch.equal(m.box, torch.tensor([[1.25, 1.25, 2.5, 2.5]]).expand(6, -1))


def test_gains_rescaled_as_upstream():
    """Two scales, 3 classes, 64 px: box x 3/2, obj x (64/640)^2 x 3/2, cls x 3/80 x 3/2."""
    assert scaled_gains(0.05, 1.0, 0.5, 2, 3, 64) == pytest.approx((0.075, 0.015, 0.5 * 3 / 80 * 1.5))


def test_layout_refuses_a_head_of_the_wrong_size():
    with pytest.raises(ValueError, match="make 16"):
        LAYOUT.split(torch.zeros(1, 17, 7))
