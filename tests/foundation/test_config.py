"""The composed config validates early: bad values fail before any data is loaded, naming the key."""

import pytest

from spikesweep.config_schema import ConfigError, validate
from tests.conftest import compose


def test_default_config_composes_and_validates():
    cfg = compose()
    validate(cfg)
    assert cfg.dataset.name == "digits" and cfg.model.name == "small_cnn" and cfg.logger.name == "wandb"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epochs=abc", "trainer.epochs"),
        ("trainer.epochs=0", "trainer.epochs=0 must be >= 1"),
        ("trainer.batch_size=0", "trainer.batch_size=0 must be >= 1"),
        ("dataset.T=0", "dataset.T=0 (time steps) must be an integer >= 1"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 must be > 0"),
        ("trainer.amp=fp8", "trainer.amp='fp8' is not one of auto, bf16, fp16, off"),
        ("trainer.eval_only=true", "trainer.eval_only=true needs a checkpoint"),
        ("+trainer.epochz=3", "trainer.epochz"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(compose(override))
