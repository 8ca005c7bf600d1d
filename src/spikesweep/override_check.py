"""Check command-line overrides before Hydra runs, so a typo costs one clear line, not a traceback.

Hydra's own messages are multi-line; this turns the two commonest mistakes into one line with a hint:
an unknown option of a config group (with the valid ones) and an unknown key (with the nearest key).
"""

import difflib
import re

from omegaconf import DictConfig, OmegaConf

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
    return None


def check(overrides: list[str]) -> str | None:
    """The problem with these overrides in one line, or None when they compose."""
    from hydra.errors import HydraException

    # Sweep values (a,b / range(...)) and Hydra's own settings are checked by Hydra itself.
    plain = [o for o in overrides if "=" in o and not o.startswith(("hydra", "-", "~")) and not _is_sweep(o)]
    try:
        compose_config(plain)
        return _hydra_problem(overrides)
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
