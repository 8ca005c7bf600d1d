"""Check command-line overrides before Hydra runs, so a typo costs one clear line, not a traceback.

Hydra's own messages are multi-line; this turns the two commonest mistakes into one line with a hint:
an unknown option of a config group (with the valid ones) and an unknown key (with the nearest key).
"""

import difflib
import re

from omegaconf import DictConfig, OmegaConf

from spikesweep import REPO_ROOT
from spikesweep.compose import compose_config


def _all_keys(cfg: DictConfig) -> list[str]:
    keys: list[str] = []

    def walk(node, prefix: str) -> None:
        for key in node:
            path = f"{prefix}{key}"
            keys.append(path)
            child = node._get_node(key)
            if OmegaConf.is_dict(child):
                walk(child, f"{path}.")

    walk(cfg, "")
    return keys


def _is_sweep(override: str) -> bool:
    """Hydra's own parser decides: `a,b`, `range(...)`, `choice(...)`, `glob(...)`, `interval(...)`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_override(override).is_sweep_override()
    except HydraException:  # malformed: composing it below reports the problem
        return "," in override


FACTORY_KEYS = ("_target_", "class", "()")


def _hydra_problem(overrides: list[str]) -> str | None:
    """Hydra builds its launcher, sweeper, callbacks and log handlers before any job starts, so the job's own
    `_target_` check comes too late for them: check the composed `hydra` node here."""
    from hydra.errors import HydraException

    from spikesweep.config_schema import ConfigError, check_hydra_targets

    given = [o for o in overrides if "=" in o and not o.startswith("-")]
    for o in given:
        key = o.split("=", 1)[0]
        if key.rsplit(".", 1)[-1] in FACTORY_KEYS and _is_sweep(o):
            return f"{key.lstrip('+~')} cannot be swept: give one value"
    try:
        cfg = compose_config([o for o in given if not _is_sweep(o)], hydra_config=True)
        check_hydra_targets(cfg.hydra)
    except ConfigError as err:
        return str(err)
    except HydraException as err:
        return str(err).splitlines()[0]
    launcher = cfg.hydra.runtime.choices.get("hydra/launcher")
    multirun = "-m" in overrides or "--multirun" in overrides or "hydra.mode=MULTIRUN" in overrides
    if launcher != "local" and not multirun:  # Hydra would run the single job here, silently
        return (f"hydra/launcher={launcher} launches multiruns only: add -m (`spikesweep train -m ...`) or run a "
                f"named sweep (`spikesweep sweep NAME ...`)")
    return _output_dir_problem(cfg, "hydra.sweep.dir" if multirun else "hydra.run.dir")


def _output_dir_problem(cfg: DictConfig, key: str) -> str | None:
    """Hydra creates the run (or sweep) directory before our code runs, and a failure there is a traceback:
    create it here, as Hydra will, and take back what was created."""
    import errno
    import tempfile
    from pathlib import Path

    from omegaconf.errors import OmegaConfBaseException

    try:
        path = Path(str(OmegaConf.select(cfg, key, throw_on_resolution_failure=True))).absolute()
    except OmegaConfBaseException:  # depends on values only a running job has: Hydra reports it
        return None
    created = []
    try:
        for folder in [*reversed(path.parents), path]:
            if folder.exists() and not folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", str(folder))
            if not folder.is_dir():
                folder.mkdir()
                created.append(folder)
        with tempfile.TemporaryFile(dir=path):  # an existing directory may still be read-only
            pass
    except OSError as err:
        where = f": {err.filename}" if err.filename and str(err.filename) != str(path) else ""
        return (f"{key}={path} cannot be written ({err.strerror}{where}); point {key} or paths.output_root at a "
                f"writable folder")
    finally:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:  # another run has started writing there meanwhile: it is theirs now
                break
    return None


def _group_sweeps(overrides: list[str]) -> list[list[str]]:
    """Each config-group sweep (`surrogate=atan,sigmoid`) as its single-value overrides, to compose one by one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeps = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+")
        if "=" in o and not o.startswith(("hydra", "-", "~")) and (REPO_ROOT / "conf" / key).is_dir() and _is_sweep(o):
            parsed = OverridesParser.create().parse_override(o)
            if parsed.is_choice_sweep():
                sweeps.append([f"{o.split('=', 1)[0]}={value}" for value in parsed.sweep_string_iterator()])
    return sweeps


def check(overrides: list[str]) -> str | None:
    """The problem with these overrides in one line, or None when they compose."""
    # Hydra's own settings are checked by composing the `hydra` node; sweep values (a,b / range(...)) by Hydra
    # itself, except a config group's options, which compose one by one here.
    plain = [o for o in overrides if "=" in o and not o.startswith(("hydra", "-", "~")) and not _is_sweep(o)]
    problem = _compose_problem(plain)
    for values in _group_sweeps(overrides):
        for value in values:
            problem = problem or _compose_problem([*plain, value])
    return problem or _hydra_problem(overrides)


def _compose_problem(plain: list[str]) -> str | None:
    from hydra.errors import HydraException

    try:
        compose_config(plain)
        return None
    except HydraException as err:
        message = str(err)
    missing_option = re.search(r"Could not find '([^']+)/([^']+)'", message)
    if missing_option:
        group, option = missing_option.groups()
        valid = re.findall(r"^\t(\S+)$", message, flags=re.M)
        hint = difflib.get_close_matches(option, valid, n=1)
        did_you_mean = f" (did you mean {group}={hint[0]}?)" if hint else ""
        return f"unknown {group} '{option}'{did_you_mean}; valid: {', '.join(valid)}"
    bad_key = re.search(r"Could not override '([^']+)'", message) or re.search(r"Key '([^']+)' is not in struct", message)
    if bad_key:
        key = bad_key.group(1)
        base = compose_config([o for o in plain if not o.startswith(f"{key}=")])
        hint = difflib.get_close_matches(key, _all_keys(base), n=1)
        did_you_mean = f" (did you mean {hint[0]}?)" if hint else ""
        return f"unknown key '{key}'{did_you_mean}; add it with +{key}=... only if it is meant to be new"
    return message.splitlines()[0]
