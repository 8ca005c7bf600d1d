"""Early validation of the composed config: wrong types, unknown keys and impossible values fail here,
before any data is loaded, with the offending key named.

Groups whose keys are fixed (trainer, optimizer, scheduler, logger, paths) have a schema; groups whose keys
depend on the chosen option (model, dataset, neuron, surrogate) are checked by their builders, which
reject unknown parameters by name. The schemas state types only: every default lives in conf/, the one
place a value is set.
"""

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A user-fixable problem with the configuration."""


@dataclass
class EmaSchema:
    enabled: bool = MISSING
    decay: float = MISSING


@dataclass
class MixupSchema:
    mixup_alpha: float = MISSING
    cutmix_alpha: float = MISSING
    prob: float = MISSING
    switch_prob: float = MISSING
    mode: str = MISSING
    off_epoch: int | None = MISSING
    per_epoch: bool = MISSING


@dataclass
class TrainerSchema:
    epochs: int = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    num_workers: Any = MISSING  # auto | an integer >= 0 (OmegaConf 2.3 types no int | str union)
    device: str = MISSING
    amp: str = MISSING
    grad_clip: float | None = MISSING
    label_smoothing: float = MISSING
    compile: Any = MISSING  # true | false | auto
    channels_last: bool = MISSING
    fold_bn_eval: bool = MISSING
    checkpoint_activations: str = MISSING
    eval_only: bool = MISSING
    dist_eval: bool = MISSING
    deterministic: bool = MISSING
    max_steps_per_epoch: int | None = MISSING
    val_fraction: float = MISSING
    ema: EmaSchema = field(default_factory=EmaSchema)
    mixup: MixupSchema = field(default_factory=MixupSchema)


@dataclass
class OptimizerSchema:
    name: str = MISSING
    lr: float = MISSING
    blr: float | None = MISSING
    weight_decay: float = MISSING
    impl: str = MISSING
    # only some optimizers take these: absent means "not this optimizer's"
    momentum: float | None = None
    nesterov: bool | None = None
    betas: list[float] | None = None
    kwargs: dict[str, Any] | None = None


@dataclass
class SchedulerSchema:
    name: str = MISSING
    # `none` takes none of these: absent means "not this schedule's"
    warmup_epochs: int | None = None
    warmup_lr: float | None = None
    min_lr: float | None = None
    cooldown_epochs: int | None = None


@dataclass
class LoggerSchema:
    name: str = MISSING
    project: str = MISSING
    entity: str | None = MISSING
    mode: str = MISSING
    group: str | None = MISSING
    tags: list[str] = field(default_factory=list)


@dataclass
class PathsSchema:
    output_root: str = MISSING
    data_dir: str = MISSING
    cache_dir: str = MISSING


SCHEMAS = {
    "trainer": TrainerSchema,
    "optimizer": OptimizerSchema,
    "scheduler": SchedulerSchema,
    "logger": LoggerSchema,
    "paths": PathsSchema,
}
JOBS = ("train", "bench_neuron", "export_fpga")
CHOICES = {
    "trainer.amp": ("auto", "bf16", "fp16", "off"),
    "trainer.compile": (True, False, "auto"),
    "trainer.mixup.mode": ("batch", "pair", "elem"),
    "trainer.checkpoint_activations": ("none", "blocks"),
    "optimizer.impl": ("auto", "foreach", "fused", "single"),
    "logger.name": ("wandb", "none"),
    "logger.mode": ("auto", "online", "offline", "disabled"),
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first bad key; returns silently for a usable config."""
    for group, schema in SCHEMAS.items():
        if group not in cfg:
            raise ConfigError(f"config group '{group}' is missing from the composed config")
        try:
            merged = OmegaConf.merge(OmegaConf.structured(schema), cfg[group])
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or getattr(err, "key", None)
            raise ConfigError(f"{group}.{key}: {str(err).splitlines()[0]}" if key else f"{group}: {err}") from err
        unset = sorted(OmegaConf.missing_keys(merged))
        if unset:
            raise ConfigError(f"{group}.{unset[0]} is not set: every {group} option in conf/{group}/ must state it")
    _check_targets(cfg)
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    checks = [
        ("seed", lambda v: isinstance(v, int) and v >= 0, "must be an integer >= 0"),
        ("trainer.epochs", lambda v: v >= 1, "must be >= 1"),
        ("trainer.batch_size", lambda v: v >= 1, "must be >= 1"),
        ("trainer.eval_batch_size", lambda v: v >= 1, "must be >= 1"),
        ("trainer.num_workers", lambda v: v == "auto" or isinstance(v, int) and not isinstance(v, bool) and v >= 0,
         "must be auto or an integer >= 0"),
        ("trainer.val_fraction", lambda v: 0 <= v < 1, "must be >= 0 and < 1 (the share of training samples held out)"),
        ("optimizer.lr", lambda v: v > 0, "must be > 0"),
        ("optimizer.weight_decay", lambda v: v >= 0, "must be >= 0"),
        ("dataset.T", lambda v: isinstance(v, int) and v >= 1, "(time steps) must be an integer >= 1"),
    ]
    for key, ok, message in checks:
        value = OmegaConf.select(cfg, key)
        if value is not None and not ok(value) or key == "seed" and value is None:
            raise ConfigError(f"{key}={value!r} {message}" if isinstance(value, str) else f"{key}={value} {message}")
    if cfg.optimizer.blr is not None and cfg.optimizer.blr <= 0:
        raise ConfigError(f"optimizer.blr={cfg.optimizer.blr} must be > 0")
    schedule = int(cfg.trainer.epochs) - int(cfg.scheduler.get("cooldown_epochs") or 0)
    if cfg.scheduler.name != "none" and schedule < 1:
        raise ConfigError(f"scheduler.cooldown_epochs={cfg.scheduler.cooldown_epochs} leaves no epoch of schedule: "
                          f"it must be below trainer.epochs={cfg.trainer.epochs}")
    job = cfg.get("job", "train")  # configs saved before `job` existed are training runs
    if job not in JOBS:
        raise ConfigError(f"job={job!r} is not one of {', '.join(JOBS)}")
    if job == "bench_neuron" and "bench" not in cfg:
        raise ConfigError("job=bench_neuron needs a `bench` node ({T, N, device, ...}): use +experiments=survey_speed")
    if job == "export_fpga" and ("export" not in cfg or not cfg.get("ckpt")):
        raise ConfigError("job=export_fpga needs a trained run: ckpt=RUN_DIR (or a .pt file) and an `export` node "
                          "({bits, ...}): use +experiments=stdbp_fpga_bits ckpt=RUN_DIR")
    if cfg.trainer.eval_only and not cfg.get("ckpt"):
        raise ConfigError("trainer.eval_only=true needs a checkpoint: add ckpt=PATH")


#: Modules whose objects a config may name in `_target_`.
TARGET_PREFIXES = ("spikesweep.", "timm.", "torch.", "torchvision.", "spikingjelly.")
#: Under `hydra.*` (launcher, sweeper, callbacks): Hydra's own plugins and ours, nothing else. Hydra calls these
#: before any job starts, so a `+hydra.callbacks.x._target_=shutil.copy` would run with the user's rights.
HYDRA_TARGET_PREFIXES = ("spikesweep.", "hydra_plugins.", "hydra._internal.core_plugins.")
#: Logging handlers, formatters and filters (`class`, `()`) under hydra.job_logging / hydra.hydra_logging.
LOGGING_PREFIXES = ("logging.", "spikesweep.")


def _check_targets(cfg: DictConfig) -> None:
    """Refuse `_target_` outside the allow-list: a config (or a checkpoint's copy of one) never runs
    arbitrary code."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if target is not None and not str(target).startswith(TARGET_PREFIXES):
                raise ConfigError(
                    f"{path}._target_={target} is not allowed; _target_ must start with one of {', '.join(TARGET_PREFIXES)}"
                )
            for key, child in node.items():
                walk(child, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{path}[{i}]")

    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)  # checked by check_hydra_targets, before Hydra starts
    walk(container, "")


def check_hydra_targets(hydra_cfg: DictConfig) -> None:
    """The same for the `hydra` node of a config composed with `return_hydra_config=True`: every `_target_`
    (launcher, sweeper, callbacks) and every logging factory. Each is resolved first, so an interpolation
    cannot hide one; one that does not resolve here is refused."""

    def walk(node: Any, path: str, keys: tuple[str, ...], allowed: tuple[str, ...], refused: tuple[str, ...]) -> None:
        if OmegaConf.is_dict(node):
            for key in node:
                child_path = f"{path}.{key}"
                if key in keys:
                    try:
                        target = str(node[key])
                    except OmegaConfBaseException as err:
                        raise ConfigError(f"{child_path} cannot be checked before the run: {str(err).splitlines()[0]}") from err
                    if not target.startswith(allowed) or target.startswith(refused):
                        raise ConfigError(
                            f"{child_path}={target} is not allowed; {key} must start with one of {', '.join(allowed)}"
                        )
                elif path == "hydra" and key in ("job_logging", "hydra_logging"):
                    walk(node._get_node(key), child_path, ("class", "()", "_target_"), LOGGING_PREFIXES, ("logging.config",))
                else:
                    walk(node._get_node(key), child_path, keys, allowed, refused)
        elif OmegaConf.is_list(node):
            for i in range(len(node)):
                walk(node._get_node(i), f"{path}[{i}]", keys, allowed, refused)

    walk(hydra_cfg, "hydra", ("_target_",), HYDRA_TARGET_PREFIXES, ())
