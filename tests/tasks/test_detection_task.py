"""The detection task as the engine drives it: collate, meters (training and evaluation), their state in a
mid-epoch checkpoint, gathering over ranks, and its config."""

import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from spikesweep.engine.distributed import DistInfo, ProcessGroupSync
from spikesweep.protocols import Task
from spikesweep.tasks import build_task

REPO = Path(__file__).resolve().parents[2]
META = SimpleNamespace(num_classes=3, input_shape=(3, 64, 64), time_steps=2)
MODEL = {"anchors": [[10, 14, 23, 27, 37, 58], [81, 82, 135, 169, 344, 319]], "strides": [16, 32]}
P = 3 * 4 * 4 + 3 * 2 * 2  # 64 px: a 4 x 4 grid at stride 16, 2 x 2 at stride 32, 3 anchors each
LOCAL = ProcessGroupSync(DistInfo(), torch.device("cpu"))


def task_config() -> dict:
    """conf/task/detection.yaml, its anchors and strides read from a model config as Hydra would."""
    cfg = OmegaConf.create({"model": MODEL, "task": OmegaConf.load(REPO / "conf/task/detection.yaml")})
    return OmegaConf.to_container(cfg.task, resolve=True)


@pytest.fixture(scope="module")
def task() -> Task:
    return build_task(task_config(), META, {})


def sample(boxes: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(3, 64, 64), torch.tensor(boxes, dtype=torch.float32).view(-1, 6)


def batches(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two batches of head outputs [B, P, 8] and their targets, one image without boxes."""
    g = torch.Generator().manual_seed(seed)
    targets = [torch.tensor([[[0, 4, 4, 30, 40, 0], [2, 20, 10, 60, 50, 0]], [[-1] * 6, [-1] * 6]], dtype=torch.float32),
               torch.tensor([[[1, 0, 0, 63, 63, 0]], [[0, 10, 10, 20, 20, 1]]], dtype=torch.float32)]
    return [(torch.randn(2, P, 8, generator=g) * 3, t) for t in targets]


def test_is_a_task_with_the_configs_settings(task):
    assert isinstance(task, Task)
    assert (task.best_metric, task.higher_is_better) == ("map50_95", True)
    assert task.layout.grids == ((4, 4), (2, 2))
    assert (task.conf_threshold, task.iou_threshold, task.max_detections) == (0.001, 0.6, 300)


def test_collate_pads_with_minus_one_rows_and_takes_empty_images(task):
    x, targets = task.collate()([sample([[1, 1, 2, 3, 4, 0], [2, 5, 6, 7, 8, 1]]), sample([])])
    assert x.shape == (2, 3, 64, 64) and targets.shape == (2, 2, 6)
    assert targets[0].tolist() == [[1, 1, 2, 3, 4, 0], [2, 5, 6, 7, 8, 1]]
    assert (targets[1] == -1).all()
    _, none = task.collate()([sample([]), sample([])])
    assert none.shape == (2, 1, 6) and (none == -1).all()


def test_outputs_are_the_mean_over_time_and_the_loss_trains(task):
    raw = torch.randn(2, 2, P, 8, requires_grad=True)  # [T, B, P, 5 + K]
    outputs = task.outputs(raw)
    assert torch.allclose(outputs, raw.mean(0))
    _, targets = task.collate()([sample([[0, 4, 4, 30, 40, 0]]), sample([])])
    task.loss(outputs, targets).backward()
    assert raw.grad is not None and raw.grad.abs().sum() > 0


def test_training_meter_sums_the_given_loss(task):
    meter = task.meter()
    for outputs, targets in batches(0):
        meter.update(outputs, targets, loss=task.loss(outputs, targets))
    expected = sum(task.loss(o, t).item() for o, t in batches(0)) / 4
    assert meter.samples == 4
    assert meter.compute(LOCAL) == {"loss": pytest.approx(expected)}


def evaluated(task, data) -> object:
    meter = task.meter()
    for outputs, targets in data:
        meter.update(outputs, targets)
    return meter


def test_evaluation_meter_state_round_trips_through_a_checkpoint(task, tmp_path):
    meter = evaluated(task, batches(0))
    torch.save({"meter": meter.state()}, tmp_path / "ckpt.pt")
    restored = task.meter()
    restored.load_state(torch.load(tmp_path / "ckpt.pt", weights_only=True)["meter"])
    metrics = meter.compute(LOCAL)
    assert set(metrics) == {"loss", "map50_95", "map50"}
    assert restored.compute(LOCAL) == metrics and restored.samples == 4


class TwoRanks:
    """A `Sync` whose other rank holds `other`'s metrics, sent through pickle as all_gather_object does."""

    def __init__(self, other) -> None:
        self.other = other

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        raise AssertionError("detection gathers; it does not sum")

    def gather(self, obj):
        theirs = (self.other.loss_sum, self.other.samples, self.other.ground_truth, self.other.detections)
        return [pickle.loads(pickle.dumps(o)) for o in (obj, theirs)]


def test_ranks_gathered_equal_one_process_seeing_everything(task):
    first, second = batches(0), batches(1)
    whole = evaluated(task, first + second).compute(LOCAL)
    split = evaluated(task, first).compute(TwoRanks(evaluated(task, second)))
    assert split == pytest.approx(whole)
    assert whole["map50"] > 0 and whole != evaluated(task, first).compute(LOCAL)  # both ranks' images counted


def test_epoch_line(task):
    line = task.epoch_line({"train_loss": 1.5, "test_map50_95": 25.0, "test_map50": 50.0, "test_loss": 2.0})
    assert line == "loss 1.5000  test mAP50-95 25.00%  mAP50 50.00%"
