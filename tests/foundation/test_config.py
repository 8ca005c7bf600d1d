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
        ("trainer.val_fraction=1.0", "trainer.val_fraction=1.0 must be >= 0 and < 1"),
        ("+trainer.epochz=3", "trainer.epochz"),
        ("scheduler.cooldown_epochs=15", "scheduler.cooldown_epochs=15 leaves no epoch of schedule: it must be below "
         "trainer.epochs=15"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(compose(override))


def test_target_outside_the_allow_list_is_refused():
    with pytest.raises(ConfigError, match=r"_target_=os.system is not allowed"):
        validate(compose("+model.init._target_=os.system"))
    validate(compose("+model.init._target_=torch.nn.init.zeros_"))


def test_seed_must_be_an_integer():
    with pytest.raises(ConfigError, match="seed='abc' must be an integer >= 0"):
        validate(compose("seed=abc"))


def test_defaults_live_in_conf_alone():
    """The schemas state types only: a trainer option that leaves a key out is refused by name instead of
    silently taking a second default from Python."""
    from omegaconf import OmegaConf

    cfg = compose()
    with pytest.raises(ConfigError, match="trainer.epochs is not set: every trainer option in conf/trainer/"):
        OmegaConf.set_struct(cfg, False)
        del cfg.trainer["epochs"]
        validate(cfg)
    assert compose().trainer.epochs == 15  # conf/trainer/default.yaml's value, the only one


def test_the_venv_holds_the_torch_set_the_makefile_pins():
    """torch, torchvision and torchaudio (spikingjelly's dependency) as `make install` pins them, and importable
    together: an unpinned torchaudio came in at whatever version the index offered."""
    import re
    from importlib.metadata import version

    from tests.conftest import REPO

    pins = dict(re.findall(r"(torch\w*)==(\S+)", re.search(r"^TORCH_PIN \?= (.*)$", (REPO / "Makefile").read_text(),
                                                                  flags=re.M).group(1)))
    assert set(pins) == {"torch", "torchvision", "torchaudio"}
    for package, pinned in pins.items():
        assert version(package).split("+")[0] == pinned, package
    import torchaudio  # noqa: F401  (imports beside this torch)
