"""Every registered model trains one step with every registered neuron (issue 18: neurons compose with every
model). Both lists come from the registries, so a new model or neuron is covered without editing this file;
a pair that truly cannot work must be refused with a one-line message, listed in REFUSED."""

import pytest
import torch

from spikesweep.data.registry import DatasetMeta
from spikesweep.models.registry import MODELS, build_model
from spikesweep.spiking import build_neuron, build_surrogate
from spikesweep.spiking.neurons import NEURONS
from tests.models.helpers import train_step

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: torch's thread pool costs more than it saves

T, BATCH = 2, 2
# Tiny datasets, tried in this order: a model is paired with the first it builds for (with lif).
METAS = (
    DatasetMeta(num_classes=3, input_shape=(3, 16, 16), time_steps=T, temporal=False),
    DatasetMeta(num_classes=3, input_shape=(1, 28, 28), time_steps=T, temporal=False),
    DatasetMeta(num_classes=3, input_shape=(12,), time_steps=T, temporal=True),  # 3 channels x 4 pixels
    DatasetMeta(num_classes=3, input_shape=(3, 32, 32), time_steps=T, temporal=False),  # detectors: stride 32
)
# Narrower variants of the big models (size options only: the registered name and its depth x width stay).
SHRINK = {"sdtv3": {"depths": [1, 1, 1, 1], "mlp_ratio": 1}, "spikingformer": {"mlp_ratio": 1}}
# (model, neuron) -> the one-line refusal expected. Empty: every pair works today.
REFUSED: dict[tuple[str, str], str] = {}
# Models that cannot train at these sizes for a reason that is not the neuron's: SFOD's 121-layer DenseNets
# reach 1x1 maps where each pre-conv BatchNorm sees T x B = 4 values per channel, mostly equal spikes, and
# scales gradients by up to 1/sqrt(eps) ~ 300 per layer until they overflow (upstream's network alike; on Gen1's
# 240x304 the smallest map is 1x2, 160 values at T=5, batch 16). sfod_tiny, the same code, stands in for them here.
STAND_INS = {"sfod_densenet121_16": "sfod_tiny", "sfod_densenet121_24": "sfod_tiny"}




def _config(model: str) -> dict:
    family = next((f for f in SHRINK if model.startswith(f)), None)
    return {"name": model, **SHRINK.get(family, {})}


def _meta(model: str) -> DatasetMeta:
    lif = build_neuron({"name": "lif", "backend": "torch"}, build_surrogate({"name": "atan"}), T)
    refusals = []
    for meta in METAS:
        try:
            build_model(_config(model), lif, meta)
            return meta
        except ValueError as err:
            refusals.append(str(err))
    raise AssertionError(f"{model} builds for none of the tiny datasets: {refusals}")


def _input(meta: DatasetMeta) -> torch.Tensor:
    shape = (BATCH, T, *meta.input_shape) if meta.temporal else (BATCH, *meta.input_shape)
    return torch.rand(shape) * 2


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS.names())
def test_every_neuron_trains_in_this_model(model):
    if model in STAND_INS:
        pytest.skip(f"{model}: degenerate at the tiny sizes; {STAND_INS[model]} covers its code")
    meta = _meta(model)
    x = _input(meta)
    surrogate = build_surrogate({"name": "atan"})
    failures = []
    for neuron in NEURONS.names():
        torch.manual_seed(0)
        params = {"name": neuron, "backend": "torch"}  # eager: compile warm-up would cost minutes here
        expected = REFUSED.get((model, neuron))
        try:
            net = build_model(_config(model), build_neuron(params, surrogate, T), meta)
            logits = train_step(net, x, meta.num_classes)
        except ValueError as err:
            if expected is None or expected not in str(err) or "\n" in str(err):
                failures.append(f"{neuron}: {err}")
            continue
        except Exception as err:  # noqa: BLE001 - every failure of every pair is reported at once
            failures.append(f"{neuron}: {type(err).__name__}: {err}")
            continue
        if expected is not None:
            failures.append(f"{neuron}: trained, but REFUSED expects '{expected}'")
        elif logits.dim() == 4 and (logits.shape[1] != BATCH or logits.shape[-1] - meta.num_classes not in (4, 5)):
            failures.append(f"{neuron}: detections {tuple(logits.shape)}")  # [T, B, P, 5 + K] YOLO, 4 + K SSD
        elif logits.dim() != 4 and logits.shape[1:] != (BATCH, meta.num_classes):  # [T, B, K], or [1, B, K]
            failures.append(f"{neuron}: logits {tuple(logits.shape)}")
    assert not failures, f"{model}: " + "; ".join(failures)
