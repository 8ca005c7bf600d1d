"""Distillation: the loss terms, and the real entry point training an ANN teacher then distilling from it."""

import json

import pytest
import torch
import torch.nn.functional as F

from spikesweep.data.registry import DatasetMeta
from spikesweep.methods import build_method
from spikesweep.run import RunError, train
from tests.conftest import SMOKE, compose
from tests.models.helpers import build, lif

META = DatasetMeta(num_classes=10, input_shape=(1, 8, 8), time_steps=2, temporal=False)
TINY = ("model=survey_cf10", "model.hidden=16", "trainer.batch_size=8", "trainer.eval_batch_size=512")


def _teacher_ckpt(tmp_path):
    teacher = build("survey_cf10", META, activation="relu", hidden=16)
    path = tmp_path / "teacher.pt"
    torch.save({"model": teacher.state_dict()}, path)
    return str(path)


def _method(kind, tmp_path, **params):
    cfg = {"name": kind, "teacher_ckpt": _teacher_ckpt(tmp_path), "teacher_model": {"activation": "relu"}, **params}
    return build_method(cfg, {"name": "survey_cf10", "hidden": 16}, lif(), META)


def test_response_loss_mixes_soft_teacher_targets_with_the_engine_loss(tmp_path):
    torch.manual_seed(0)
    method = _method("distill_response", tmp_path, alpha=0.3, tau=4.0)
    method.attach(torch.nn.Identity(), torch.device("cpu"))
    x, logits, base = torch.randn(2, 1, 8, 8), torch.randn(2, 10), torch.tensor(1.5)
    teacher = method.teacher(x).mean(0)
    soft = F.cross_entropy(logits / 4.0, F.softmax(teacher / 4.0, -1))
    assert torch.allclose(method.loss(x, logits, base), 0.3 * 16 * soft + 0.7 * base)


def test_feature_loss_compares_every_activation_layer_and_keeps_nothing_from_evaluation(tmp_path):
    torch.manual_seed(0)
    method = _method("distill_feature", tmp_path, beta=0.5)
    student = build("survey_cf10", META, hidden=16)
    method.attach(student, torch.device("cpu"))
    x = torch.randn(2, 1, 8, 8)
    student.eval()
    student(x)
    assert method.student_features == []
    student.train()
    logits = student(x).mean(0)
    assert len(method.student_features) == len(student.feature_layers) == 7
    loss = method.loss(x, logits, torch.tensor(0.0))
    assert loss > 0 and method.student_features == [] and method.teacher_features == []
    loss.backward()
    assert student.features[0].weight.grad.abs().sum() > 0


def test_a_missing_teacher_is_one_clear_error():
    with pytest.raises(ValueError, match="needs method.teacher_ckpt"):
        build_method({"name": "distill_response"}, {"name": "survey_cf10"}, lif(), META)
    with pytest.raises(ValueError, match="unknown method 'onlin'"):
        build_method({"name": "onlin"}, {"name": "survey_cf10"}, lif(), META)
    assert build_method({"name": "bptt"}, {"name": "survey_cf10"}, lif(), META) is None


@pytest.mark.parametrize("method", ["distill_response", "distill_feature"])
def test_distillation_trains_from_a_teacher_the_entry_point_wrote(tmp_path, method):
    teacher_dir = tmp_path / "teacher"
    overrides = (*SMOKE, *TINY, "model.activation=relu", "dataset.T=1")
    assert train(compose(*overrides), teacher_dir, list(overrides))["status"] == "completed"
    ckpt = teacher_dir / "checkpoints" / "last.pt"
    overrides = (*SMOKE, *TINY, "dataset.T=2", f"method={method}", f"method.teacher_ckpt={ckpt}")
    summary = train(compose(*overrides), tmp_path / "student", list(overrides))
    assert summary["status"] == "completed"
    state = torch.load(tmp_path / "student" / "checkpoints" / "last.pt", weights_only=True)
    assert not any(k.startswith("teacher") for k in state["model"])  # the teacher is never saved with the student


def test_a_wrong_teacher_checkpoint_fails_before_training(tmp_path):
    overrides = (*SMOKE, *TINY, "method=distill_response", f"method.teacher_ckpt={tmp_path / 'none.pt'}")
    with pytest.raises(RunError, match="checkpoint not found"):
        train(compose(*overrides), tmp_path / "run", list(overrides))
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "failed"
