"""The SSD detection task: priors, matching, focal loss, decoding + NMS, metrics, and SFOD training on it."""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator

from spikesweep.data.registry import DatasetMeta
from spikesweep.engine.distributed import DistInfo, ProcessGroupSync
from spikesweep.protocols import Task
from spikesweep.spiking import reset_states
from spikesweep.tasks import build_task
from spikesweep.tasks.ssd_boxes import encode, grid_sizes, match, ssd_priors
from spikesweep.tasks.ssd_detection import SSDLoss
from tests.models.helpers import build

REPO = Path(__file__).resolve().parents[2]
LOCAL = ProcessGroupSync(DistInfo(), torch.device("cpu"))
EVENTS = DatasetMeta(num_classes=2, input_shape=(4, 64, 64), time_steps=2, temporal=True)
GEN1_HW = (240, 304)
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: torch's thread pool costs more than it saves


def task_config(model: str = "sfod_tiny", **overrides) -> dict:
    """conf/task/ssd_detection.yaml, its prior geometry read from a model config as Hydra would."""
    model_cfg = OmegaConf.load(REPO / "conf/model" / f"{model}.yaml")
    cfg = OmegaConf.create({"model": model_cfg, "task": OmegaConf.load(REPO / "conf/task/ssd_detection.yaml")})
    return {**OmegaConf.to_container(cfg.task, resolve=True), **overrides}


def ssd_task(meta=EVENTS, **overrides) -> Task:
    return build_task(task_config(**overrides), meta, {})


def test_the_last_gen1_map_has_the_hand_computed_priors():
    """1 x 2 grid, scales 0.8 and 1.0, ratio 2: (w, h) fractions (0.8, 0.8), (sqrt 0.8, sqrt 0.8),
    (0.8 sqrt 2 clipped to 1, 0.8 / sqrt 2) and its transpose, times 304 x 240, centred at (76, 120)."""
    cfg = task_config("sfod_densenet121_16")
    priors = ssd_priors(GEN1_HW, cfg["halvings"], cfg["aspect_ratios"], cfg["min_ratio"], cfg["max_ratio"])
    assert grid_sizes(GEN1_HW, cfg["halvings"])[-1] == (1, 2)
    s, b, r = 0.8, math.sqrt(0.8), 0.8 / math.sqrt(2)
    wh = torch.tensor([[s * 304, s * 240], [b * 304, b * 240], [304, r * 240], [r * 304, 240]])
    first_cell = torch.cat((torch.tensor([76.0, 120.0]) - wh / 2, torch.tensor([76.0, 120.0]) + wh / 2), 1)
    torch.testing.assert_close(priors[-8:-4], first_cell)
    torch.testing.assert_close(priors[-4:], first_cell + torch.tensor([152.0, 0, 152, 0]))


def test_every_prior_is_torchvisions_default_box():
    """The same priors as torchvision's DefaultBoxGenerator (upstream's generator) on the model's grids."""
    cfg = task_config("sfod_densenet121_24")
    ours = ssd_priors(GEN1_HW, cfg["halvings"], cfg["aspect_ratios"], cfg["min_ratio"], cfg["max_ratio"])
    grids = [list(g) for g in grid_sizes(GEN1_HW, cfg["halvings"])]
    theirs = DefaultBoxGenerator(cfg["aspect_ratios"], cfg["min_ratio"], cfg["max_ratio"])._grid_default_boxes(
        grids, list(GEN1_HW))
    theirs = torch.cat((theirs[:, :2] - theirs[:, 2:] / 2, theirs[:, :2] + theirs[:, 2:] / 2), 1)
    torch.testing.assert_close(ours, theirs * torch.tensor([304.0, 240, 304, 240]), atol=1e-3, rtol=0)
    assert len(ours) == 6800


PRIORS = torch.tensor([[0.0, 0, 10, 10], [0, 0, 20, 20], [50, 50, 60, 60]])


def test_a_box_takes_priors_over_the_threshold_and_always_its_best():
    """IoU 1 with prior 0, 0.25 with prior 1 (background); a box overlapping prior 2 at IoU 0.21 still takes it."""
    boxes = torch.tensor([[0.0, 0, 10, 10], [40, 40, 62, 62]])
    assert match(boxes, PRIORS, 0.5).tolist() == [0, -1, 1]
    assert match(boxes[:0], PRIORS, 0.5).tolist() == [-1, -1, -1]


def test_focal_and_box_loss_on_a_hand_checked_case():
    """One box, class 1, on prior 0. Zero logits: p = 0.5, focal = 0.25 * 0.5^2 ln 2 for the positive and
    0.75 * 0.5^2 ln 2 for each of the 5 negatives: ln 2 in all. dx 1 off: smooth L1 adds 0.5. One matched prior."""
    loss = SSDLoss(PRIORS, 2, (10.0, 10.0, 5.0, 5.0), 0.5, 0.25, 2.0)
    targets = torch.tensor([[[1.0, 0, 0, 10, 10, 0], [-1, -1, -1, -1, -1, -1]]])
    outputs = torch.zeros(1, 3, 6)
    torch.testing.assert_close(loss(outputs, targets), torch.tensor(math.log(2)))
    outputs[0, 0, 0] = 1.0
    torch.testing.assert_close(loss(outputs, targets), torch.tensor(math.log(2) + 0.5))
    outputs[0, 1, 0] = 1.0  # a background prior's offsets do not count
    torch.testing.assert_close(loss(outputs, targets), torch.tensor(math.log(2) + 0.5))


def test_decode_and_nms_give_back_the_hand_made_box():
    """Two priors predict the same box (scores sigmoid 5 and 4), a third class-0 prior elsewhere is below the
    threshold: one detection, the box, the best score, class 1."""
    task = ssd_task()
    box = torch.tensor([[10.0, 12, 30, 40]])
    ious = torch.stack([match(box, task.priors[i:i + 1], 0.0) for i in range(len(task.priors))])
    near = (ious[:, 0] == 0).nonzero()[:2, 0]  # any two priors: offsets carry them to the box
    outputs = torch.full((1, len(task.priors), 6), -10.0)
    outputs[0, near, :4] = encode(box.expand(2, 4), task.priors[near], task.criterion.box_weights)
    outputs[0, near[0], 5], outputs[0, near[1], 5] = 5.0, 4.0
    outputs[0, 7, 4] = -5.0
    (found,) = task.detect(outputs)
    assert found.shape == (1, 6)
    torch.testing.assert_close(found[0], torch.tensor([10.0, 12, 30, 40, torch.tensor(5.0).sigmoid(), 1]))


def test_boxes_below_the_evaluated_size_are_dropped_from_both_sides():
    task = ssd_task(min_box_diagonal=30, min_box_side=20)
    targets = torch.tensor([[[0.0, 0, 0, 25, 25, 0], [1, 0, 0, 19, 40, 0], [-1, -1, -1, -1, -1, -1]]])
    assert task.ground_truth(targets)[0].tolist() == [[0.0, 0, 0, 25, 25, 0]]
    assert task.evaluated(torch.tensor([[0.0, 0, 21, 21], [0, 0, 25, 25]])).tolist() == [False, True]


def _perfect_outputs(task, targets: torch.Tensor) -> torch.Tensor:
    """Head outputs that put every box exactly on its matched priors with high class scores."""
    outputs = torch.full((len(targets), len(task.priors), 6), -10.0)
    for out, rows in zip(outputs, targets):
        rows = rows[rows[:, 0] >= 0]
        matched = match(rows[:, 1:5], task.priors, 0.5)
        fg = (matched >= 0).nonzero()[:, 0]
        out[fg, :4] = encode(rows[matched[fg], 1:5], task.priors[fg], task.criterion.box_weights)
        out[fg, 4 + rows[matched[fg], 0].long()] = 10.0
    return outputs


def test_the_evaluation_meter_reports_the_yolo_tasks_keys_and_perfect_outputs_score_100():
    task = ssd_task()
    assert (task.best_metric, task.report_columns) == ("map50_95", ("test_map50_95", "test_map50", "test_loss"))
    targets = torch.tensor([[[0.0, 4, 4, 30, 28, 0], [1, 34, 30, 60, 62, 0]], [[1.0, 10, 20, 40, 50, 0],
                                                                                [-1, -1, -1, -1, -1, -1]]])
    meter = task.meter()
    meter.update(_perfect_outputs(task, targets), targets)
    metrics = meter.compute(LOCAL)
    assert metrics["map50_95"] == pytest.approx(100.0) and metrics["map50"] == pytest.approx(100.0)
    assert set(metrics) == {"loss", "map50_95", "map50"}
    train = task.meter()  # a training meter weighs a batch-mean loss by the batch's images
    train.update(torch.zeros(2, 1, 6), targets, torch.tensor(3.0))
    assert train.compute(LOCAL)["loss"] == pytest.approx(3.0)


def _events(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """An in-memory event set: [T, C, H, W] frames with one bright square (a 'car' or a 'pedestrian') each."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(4):
        x = (torch.rand(EVENTS.time_steps, 4, 64, 64, generator=g) < 0.02).float()
        x0, y0 = (torch.randint(0, 32, (2,), generator=g)).tolist()
        side = 16 + 8 * (i % 2)
        x[:, :, y0:y0 + side, x0:x0 + side] = (torch.rand(EVENTS.time_steps, 4, side, side, generator=g) < 0.6).float()
        items.append((x, torch.tensor([[float(i % 2), x0, y0, x0 + side, y0 + side, 0]])))
    return items


def test_a_few_adamw_steps_on_sfod_tiny_lower_the_loss():
    torch.manual_seed(0)
    task = ssd_task()
    model = build("sfod_tiny", EVENTS)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=1e-4)  # upstream lr x 5: a few steps show it
    batch = next(iter(DataLoader(_events(0), batch_size=4, collate_fn=task.collate())))
    losses = []
    for _ in range(8):
        x, targets, loss_targets = task.batch_to(batch, torch.device("cpu"), train=True)
        loss = task.loss(task.outputs(model(x)), loss_targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        reset_states(model)
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    model.eval()
    with torch.no_grad():
        meter = task.meter()
        meter.update(task.outputs(model(x)), targets)
    assert set(meter.compute(LOCAL)) == {"loss", "map50_95", "map50"}


def test_the_task_config_composes_with_an_sfod_model():
    from tests.conftest import compose

    cfg = compose("model=sfod_densenet121_16", "task=ssd_detection")
    task = build_task(OmegaConf.to_container(cfg.task, resolve=True),
                      SimpleNamespace(num_classes=2, input_shape=(4, *GEN1_HW), time_steps=5), {})
    assert isinstance(task, Task) and task.name == "ssd_detection" and len(task.priors) == 6800
