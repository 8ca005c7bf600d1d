"""`spikesweep search NAME`: an Optuna hyperparameter search (conf/hparams_search/NAME.yaml) run as train jobs."""

import argparse
import sys
from pathlib import Path

from spikesweep.cli.common import UserError, checked, composed
from spikesweep.sweeps.slurm_executor import require_slurm_clients

PREFIX = "hparams_search."
#: Overrides that choose where the workers run (as `spikesweep sweep` takes them), not what a trial trains.
LAUNCHER = ("hydra/launcher=", "+cluster=", "cluster=", "hydra.launcher.")


def cmd_search(args: list[str]) -> int:
    from spikesweep.sweeps import search, sweep_record

    parser = argparse.ArgumentParser(prog="spikesweep search")
    parser.add_argument("name", help="conf/hparams_search/NAME.yaml")
    parser.add_argument("--workers", type=int, default=1, help="trials run at once (each asks for the next as it "
                        "frees up); with hydra/launcher=slurm, the tasks of the worker array")
    parser.add_argument("--resume", nargs="?", const="", metavar="SWEEP_DIR",
                        help="continue the search's study to its n_trials (default: its newest directory)")
    parser.add_argument("--dry-run", action="store_true", help="show the search space and budget, run nothing")
    opts, overrides = parser.parse_known_args(args)
    if opts.workers < 1:
        raise UserError("--workers must be >= 1")
    settings = [o[len(PREFIX):] for o in overrides if o.startswith(PREFIX)]
    launcher = [o for o in overrides if o.startswith(LAUNCHER)]
    train = [o for o in overrides if not o.startswith((PREFIX, *LAUNCHER))]
    spec = _spec(opts.name, settings, train)
    if opts.resume is not None:
        sweep_dir = Path(opts.resume) if opts.resume else sweep_record.newest(Path.cwd(), spec["name"])
        record = search.read_record(sweep_dir)
        if record is None:
            raise UserError(f"no {search.RECORD} in {sweep_dir}: not a search directory")
        if settings or train:  # the search given now must be the recorded one (n_trials and max_failures may change)
            search.check_unchanged(sweep_dir, record["spec"], spec)
        else:
            spec = record["spec"]
        launcher = launcher or record.get("launcher", [])
        slurm = _slurm_params(launcher)
        search.write_record(sweep_dir, spec, [*record.get("resumes", []), record["created"]], launcher)
        print(f"resuming search {spec['name']} in {sweep_dir}")
    else:
        _check_trial_config(spec)
        slurm = _slurm_params(launcher)
        if opts.dry_run:
            _dry_run(spec, slurm, opts.workers)
            return 0
        sweep_dir = search.new_sweep_dir(Path.cwd(), spec)
        search.write_record(sweep_dir, spec, launcher=launcher)
        print(f"search {spec['name']}: {spec['n_trials']} trials, {opts.workers} worker(s)"
              f"{' in one SLURM array' if slurm else ''}, in {sweep_dir}")
    print(f"status: spikesweep status {sweep_dir}", flush=True)
    try:
        if slurm is None:
            done = search.run(sweep_dir, spec, opts.workers, sys.stdout)
        else:
            require_slurm_clients("spikesweep search ... hydra/launcher=slurm")
            done = search.run_on_slurm(sweep_dir, spec, opts.workers, slurm, sys.stdout)
    except KeyboardInterrupt:  # the running trials were stopped; the study keeps them as running until a resume
        print(f"interrupted: continue with `spikesweep search {opts.name} --resume {sweep_dir}`", file=sys.stderr)
        return 130
    print(search.report(sweep_dir))
    return 0 if done["completed"] + done["pruned"] >= int(spec["n_trials"]) else 1


def _spec(name: str, settings: list[str], train: list[str]) -> dict:
    from spikesweep.sweeps import search

    try:
        spec = search.load(name, settings)
    except FileNotFoundError as err:
        raise UserError(str(err)) from None
    given = {o.partition("=")[0] for o in train}
    spec["overrides"] = [o for o in spec["overrides"] if o.partition("=")[0] not in given] + train
    clash = sorted(given & set(spec["space"]))
    if clash:
        raise UserError(f"{', '.join(clash)} is searched; it cannot also be fixed on the command line")
    return spec


def _check_trial_config(spec: dict) -> None:
    """Compose one trial's config (the middle of the space) so that a bad override fails before any trial."""
    middle = []
    for key, dist in spec["space"].items():
        value = dist["choices"][0] if dist["type"] == "categorical" else (dist["low"] + dist["high"]) / 2
        middle.append(f"{key}={int(value) if dist['type'] == 'int' else value}")
    overrides = [*spec["overrides"], *middle]
    checked(overrides)
    cfg = composed(overrides)
    if not cfg.trainer.val_fraction > 0:
        raise UserError(f"search {spec['name']} optimises {spec['metric']}: set trainer.val_fraction > 0 (a held-out "
                        f"split); the test split is never searched on")


def _slurm_params(launcher: list[str]) -> dict | None:
    """The worker array's SLURM settings (conf/hydra/launcher/slurm.yaml with the +cluster profile and
    hydra.launcher.* overrides applied), or None when the workers run here."""
    if "hydra/launcher=slurm" not in launcher:
        return None
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict

    from spikesweep.compose import compose_config

    try:
        settings = compose_config(launcher, hydra_config=True).hydra.launcher
    except HydraException as err:
        raise UserError(str(err).splitlines()[0]) from None
    with open_dict(settings):
        for key in ("_target_", "submitit_folder", "name"):  # the search sets the folder and the job name
            settings.pop(key, None)
    return OmegaConf.to_container(settings, resolve=True)


def _dry_run(spec: dict, slurm: dict | None, workers: int) -> None:
    print(f"search {spec['name']}: {spec['direction']} {spec['metric']} over {spec['n_trials']} trials "
          f"(sampler {spec['sampler']}, pruner {spec['pruner']})")
    where = {k: v for k, v in (slurm or {}).items() if v not in (None, {}, [])}
    print(f"workers: {workers}, " + (f"one SLURM array ({where})" if slurm else "here"))
    print(f"fixed: {' '.join(spec['overrides'])}")
    for key, dist in spec["space"].items():
        rest = {k: v for k, v in dist.items() if k != "type"}
        print(f"  {key:28s} {dist['type']:12s} {rest}")
