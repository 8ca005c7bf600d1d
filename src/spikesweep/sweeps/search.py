"""Hyperparameter search: an Optuna study in a sweep directory, its trials run as ordinary `spikesweep train` jobs.

A search is declared in conf/hparams_search/NAME.yaml (fixed overrides, search space, metric, direction, n_trials,
sampler, pruner). `run` keeps N workers busy: each asks the study for a trial as soon as it is free (no batches),
runs it as `spikesweep train ... hydra.run.dir=<sweep_dir>/<trial number>`, and tells the study how it ended.
`run_on_slurm` does the same with N tasks of one SLURM array, each a worker that asks for trials until n_trials
is reached; asking happens under a file lock, so workers on different nodes never over-draw the budget.
Inside the job, `TrialPruning` (a tracker) reports the validation metric every epoch and asks the pruner whether
to stop. The study lives in <sweep_dir>/study.journal (Optuna's journal file storage: safe for concurrent
writers on a shared file system); search.json records what the search is, so a resume can refuse a changed one.
"""

import json
import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from spikesweep import REPO_ROOT
from spikesweep.sweeps.slurm_executor import slurm_executor
from spikesweep.sweeps.sweep_record import write_json

SEARCH_DIR = REPO_ROOT / "conf" / "hparams_search"
RECORD = "search.json"
JOURNAL = "study.journal"
#: What a search is: a resume that changes one of these is refused (n_trials and max_failures may change).
IDENTITY = ("overrides", "metric", "direction", "space", "sampler", "pruner")
KINDS = {"float": ("low", "high", "log"), "int": ("low", "high", "step", "log"), "categorical": ("choices",)}


class SearchChanged(ValueError):
    """A resume whose search differs from the recorded one."""


def names() -> list[str]:
    return sorted(p.stem for p in SEARCH_DIR.glob("*.yaml"))


def file_name(name: str) -> str | None:
    """The conf/hparams_search/ file of a search given by file name (`digits`) or by its own name
    (`search_digits`, as its sweep directory is called), or None."""
    for stem in names():
        if name in (stem, f"search_{stem}"):
            return stem
    return None


def load(name: str, settings: list[str] | None = None) -> dict[str, Any]:
    """conf/hparams_search/NAME.yaml, with `key=value` settings applied (e.g. n_trials=6, pruner.n_startup_trials=1)."""
    import yaml  # here: `status` imports this module for trial_overrides only

    path = SEARCH_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"unknown search '{name}'; valid: {', '.join(names())}")
    spec = yaml.safe_load(path.read_text()) or {}
    for item in settings or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"hparams_search setting {item!r} is not key=value")
        node = spec
        *parents, leaf = key.split(".")
        if key.startswith("space."):  # space keys are config keys, dots and all: space.optimizer.lr.high=0.1
            rest = key[len("space."):]
            name = next((k for k in spec["space"] if rest.startswith(f"{k}.")), rest)
            node, parents, leaf = spec["space"], [name] if name != rest else [], rest[len(name) + 1:] or rest
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return checked(spec, name)


def checked(spec: dict[str, Any], name: str) -> dict[str, Any]:
    missing = [k for k in ("name", "overrides", "metric", "direction", "n_trials", "space") if k not in spec]
    if missing:
        raise ValueError(f"search '{name}' does not state {', '.join(missing)}")
    if not str(spec["metric"]).startswith("val_"):
        raise ValueError(f"search '{name}': metric {spec['metric']} is not a validation metric (val_*); a search "
                         f"must never select on the test split")
    if spec["direction"] not in ("maximize", "minimize"):
        raise ValueError(f"search '{name}': direction {spec['direction']!r} is not maximize or minimize")
    for key, dist in spec["space"].items():
        kind = dist.get("type")
        if kind not in KINDS or set(dist) - {"type", *KINDS[kind]}:
            raise ValueError(f"search '{name}': space {key} must be {{type: float|int|categorical, ...}} with keys "
                             f"{', '.join(KINDS.get(kind, ('low', 'high', 'log', 'step', 'choices')))}")
    spec.setdefault("max_failures", 3)
    spec.setdefault("sampler", {"name": "tpe", "seed": 0})
    spec.setdefault("pruner", {"name": "median"})
    return spec


# --- Optuna objects ---------------------------------------------------------------------------------------
def storage(sweep_dir: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL)))


def build_pruner(spec: dict[str, Any]):
    import optuna

    params = {k: v for k, v in spec["pruner"].items() if k != "name"}
    pruners = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
               "none": optuna.pruners.NopPruner}
    if spec["pruner"]["name"] not in pruners:
        raise ValueError(f"pruner {spec['pruner']['name']!r}: valid: {', '.join(pruners)}")
    return pruners[spec["pruner"]["name"]](**params)


def build_sampler(spec: dict[str, Any], offset: int = 0):
    """The seeded sampler; `offset` (the trials the study holds) moves the seed on resume, which would otherwise
    draw the first trials' parameters again."""
    import optuna

    params = {k: v for k, v in spec["sampler"].items() if k != "name"}
    if params.get("seed") is not None:
        params["seed"] = int(params["seed"]) + offset
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    if spec["sampler"]["name"] not in samplers:
        raise ValueError(f"sampler {spec['sampler']['name']!r}: valid: {', '.join(samplers)}")
    return samplers[spec["sampler"]["name"]](**params)


def distributions(spec: dict[str, Any]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    made = {}
    for key, dist in spec["space"].items():
        params = {k: v for k, v in dist.items() if k != "type"}
        kind = {"float": FloatDistribution, "int": IntDistribution, "categorical": CategoricalDistribution}
        made[key] = kind[dist["type"]](**params)
    return made


def open_study(sweep_dir: Path, spec: dict[str, Any]):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=spec["name"], storage=storage(sweep_dir), direction=spec["direction"],
                                sampler=build_sampler(spec), pruner=build_pruner(spec), load_if_exists=True)
    if study.trials:
        study.sampler = build_sampler(spec, len(study.trials))
    return study


# --- the record -------------------------------------------------------------------------------------------
def read_record(sweep_dir: Path) -> dict[str, Any] | None:
    path = sweep_dir / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def write_record(sweep_dir: Path, spec: dict[str, Any], resumes: list[str] | None = None,
                 launcher: list[str] | None = None) -> None:
    """search.json: the search (`spec`), where its workers run (`launcher` overrides, reused by a resume), and,
    as trials start, each one's parameter overrides (`trials`, for `status`, which reads no study)."""
    old = read_record(sweep_dir) or {}
    record = {"spec": spec, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumes": resumes or [],
              "launcher": launcher or [], "trials": old.get("trials", {}), "slurm_arrays": old.get("slurm_arrays", [])}
    write_json(sweep_dir / RECORD, record)


def record_lock(sweep_dir: Path):
    """The file lock under which workers (threads or SLURM tasks) ask for trials and update search.json."""
    from filelock import FileLock

    return FileLock(sweep_dir / ".record.lock")


def note_trial(sweep_dir: Path, number: int, params: dict[str, Any]) -> None:
    """Called under `record_lock`."""
    record = read_record(sweep_dir)
    record["trials"][str(number)] = param_overrides(params)
    write_json(sweep_dir / RECORD, record)


def note_array(sweep_dir: Path, array: str) -> None:
    """Remember a worker array's SLURM job id, so that a resume can refuse while it still runs."""
    with record_lock(sweep_dir):
        record = read_record(sweep_dir)
        record["slurm_arrays"] = [*record.get("slurm_arrays", []), array]
        write_json(sweep_dir / RECORD, record)


def trial_overrides(sweep_dir: Path) -> dict[int, list[str]]:
    """Trial number -> its parameter overrides, from search.json ({} for a directory that is not a search)."""
    record = read_record(sweep_dir) if (sweep_dir / RECORD).is_file() else None
    return {int(n): o for n, o in (record or {}).get("trials", {}).items()}


def difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """One line naming every part of the search that differs (search space key by key), or None."""
    parts = []
    for key in IDENTITY:
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "space":
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    parts.append(f"space {name}: {_short(a.get(name))} -> {_short(b.get(name))}")
        else:
            parts.append(f"{key}: {_short(a)} -> {_short(b)}")
    return "; ".join(parts) or None


def _short(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, separators=(",", ":"))


def check_unchanged(sweep_dir: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    diff = difference(old, new)
    if diff:
        raise SearchChanged(f"refusing to resume {sweep_dir}: the search changed ({diff}); start a new search instead")


def new_sweep_dir(root: Path, spec: dict[str, Any]) -> Path:
    """A new directory, created here: two searches started in the same second never share one."""
    stamp = root / "multirun" / spec["name"] / time.strftime("%Y-%m-%d_%H-%M-%S")
    for n in range(1000):
        path = stamp.with_name(f"{stamp.name}_{n}") if n else stamp
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free directory beside {stamp}")


# --- running trials ---------------------------------------------------------------------------------------
def param_overrides(params: dict[str, Any]) -> list[str]:
    return [f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()]


def trial_command(spec: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The `spikesweep train` arguments that reproduce a trial outside the search."""
    return [*spec["overrides"], *param_overrides(params)]


def recover(study) -> list[int]:
    """Trials left running by a worker that died: each is marked failed and its parameters queued again, so it
    runs once more under a new number and counts once. Returns the numbers marked failed."""
    from optuna.trial import TrialState

    dead = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        dead.append(trial.number)
    return dead


def counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {name: sum(s == state for s in states) for name, state in
            (("completed", TrialState.COMPLETE), ("pruned", TrialState.PRUNED), ("failed", TrialState.FAIL),
             ("running", TrialState.RUNNING))}


class _Search:
    """One process's workers (threads) of a search. Asking happens under `record_lock`, which also serialises
    the workers of other processes (SLURM tasks); `failed_before` is the study's failed count when this run of
    the search began, so that max_failures counts this run's failures over all its workers."""

    def __init__(self, sweep_dir: Path, spec: dict[str, Any], out: TextIO, failed_before: int) -> None:
        self.sweep_dir, self.spec, self.out, self.failed_before = sweep_dir, spec, out, failed_before
        self.study = open_study(sweep_dir, spec)
        self.dists = distributions(spec)
        self.lock = threading.Lock()
        self.stopping = False
        self.procs: set[subprocess.Popen] = set()

    def failures(self) -> int:
        return counts(self.study)["failed"] - self.failed_before

    def ask(self):
        with self.lock, record_lock(self.sweep_dir):
            done = counts(self.study)
            if self.stopping or done["failed"] - self.failed_before >= int(self.spec["max_failures"]):
                return None
            if done["completed"] + done["pruned"] + done["running"] >= int(self.spec["n_trials"]):
                return None
            trial = self.study.ask(self.dists)
            note_trial(self.sweep_dir, trial.number, trial.params)
            self.out.write(f"trial {trial.number}: started\n")
            self.out.flush()
            return trial

    def work(self) -> None:
        while (trial := self.ask()) is not None:
            state, value, note = self.run_trial(trial.number, trial.params)
            with self.lock:
                from optuna.trial import TrialState

                if self.stopping:  # interrupted: left running, so that a resume retries it
                    return
                if state == "completed":
                    self.study.tell(trial.number, value)
                else:
                    self.study.tell(trial.number, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)
                self.out.write(f"trial {trial.number}: {state}{note}\n")
                self.out.flush()

    def run_trial(self, number: int, params: dict[str, Any]) -> tuple[str, float | None, str]:
        run_dir = self.sweep_dir / str(number)
        logs = self.sweep_dir / "logs"
        logs.mkdir(exist_ok=True)
        args = [sys.executable, "-m", "spikesweep.cli", "train", *trial_command(self.spec, params),
                f"name={self.spec['name']}", f"hydra.run.dir={run_dir}",
                f"+search.dir={self.sweep_dir.resolve()}", f"+search.trial={number}"]
        with open(logs / f"{number}.log", "w") as log_file:
            proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT)
            with self.lock:
                self.procs.add(proc)
            rc = proc.wait()
            with self.lock:
                self.procs.discard(proc)
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
        except (OSError, ValueError):
            summary = {}
        status = summary.get("status")
        metric = self.spec["metric"]
        if status == "pruned":
            return "pruned", None, f" at epoch {summary.get('epochs')}"
        value = (summary.get("best") or {}).get(metric)
        if rc == 0 and status == "completed" and value is not None and math.isfinite(value):
            return "completed", float(value), f" {metric} {value:.4g}"
        error = summary.get("error") or (f"no {metric} in summary.json" if status == "completed" else f"exit {rc}")
        return "failed", None, f" ({str(error).splitlines()[0][:200]}; log: {logs / f'{number}.log'})"

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            for proc in self.procs:
                proc.terminate()


def _launcher_lock(sweep_dir: Path):
    """Held by the one process that launches this search's workers (here, or as a SLURM array)."""
    from filelock import FileLock, Timeout

    sweep_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(sweep_dir / ".search.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ValueError(f"a search is already running in {sweep_dir}") from None
    return lock


def _recovered(sweep_dir: Path, spec: dict[str, Any], out: TextIO) -> int:
    """Retry the trials that dead workers left running; returns the study's failed count from then on."""
    study = open_study(sweep_dir, spec)
    dead = recover(study)
    if dead:
        out.write(f"trial(s) {', '.join(map(str, dead))} were running when their worker died: marked failed, "
                  f"their parameters queued again\n")
    return counts(study)["failed"]


def _stopped_line(search: _Search) -> None:
    if search.failures() >= int(search.spec["max_failures"]) and not search.stopping:
        search.out.write(f"stopped: {search.failures()} trial(s) failed (max_failures {search.spec['max_failures']}); "
                         f"see their logs in {search.sweep_dir / 'logs'}\n")


def run(sweep_dir: Path, spec: dict[str, Any], workers: int, out: TextIO = sys.stdout) -> dict[str, int]:
    """Run the search in `sweep_dir` (new or resumed) until n_trials trials have finished; returns the counts."""
    lock = _launcher_lock(sweep_dir)
    try:
        search = _Search(sweep_dir, spec, out, _recovered(sweep_dir, spec, out))
        threads = [threading.Thread(target=search.work, daemon=True) for _ in range(max(1, workers))]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)
        except KeyboardInterrupt:
            search.stop()
            raise
        _stopped_line(search)
        return counts(search.study)
    finally:
        lock.release()


# --- on SLURM: one array, each task a worker ---------------------------------------------------------------
#: SLURM states in which an array task may still ask for trials.
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED")


def array_task(sweep_dir: str, failed_before: int) -> dict[str, int]:
    """What each task of a search's SLURM array runs: ask, train, tell, until the study has n_trials.

    SLURM's SIGTERM (scancel, preemption, the time limit) reaches the trial too; the task then asks for no more
    and leaves that trial running in the study, for `--resume` to retry (submitit would let it ask on)."""
    path = Path(sweep_dir)
    search = _Search(path, read_record(path)["spec"], sys.stdout, failed_before)

    def stop(_signum: int, _frame: Any) -> None:
        search.stopping = True  # no lock: the handler may interrupt a holder of it

    signal.signal(signal.SIGTERM, stop)
    search.work()
    _stopped_line(search)
    return counts(search.study)


def active_arrays(sweep_dir: Path) -> list[str]:
    """The recorded worker arrays of which squeue still lists a task."""
    arrays = (read_record(sweep_dir) or {}).get("slurm_arrays", [])
    if not arrays:
        return []
    out = subprocess.run(["squeue", "-h", "-o", "%F %T", "-j", ",".join(arrays)], capture_output=True, text=True)
    listed = (line.partition(" ") for line in out.stdout.splitlines())
    return sorted({array for array, _, state in listed if array in arrays and state in ACTIVE})


def run_on_slurm(sweep_dir: Path, spec: dict[str, Any], tasks: int, params: dict[str, Any],
                 out: TextIO = sys.stdout, poll_s: float = 2.0) -> dict[str, int]:
    """Run the search as one SLURM array of `tasks` workers (launcher settings `params`, as the sweep launcher
    takes them) and wait for it, printing each trial as it ends; returns the counts. Ctrl-C cancels the array."""
    from optuna.trial import TrialState

    lock = _launcher_lock(sweep_dir)
    try:
        still = active_arrays(sweep_dir)
        if still:
            raise ValueError(f"array {', '.join(still)} of {sweep_dir} still has tasks queued or running; wait for it "
                             f"or `scancel {' '.join(still)}` before resuming")
        failed_before = _recovered(sweep_dir, spec, out)
        executor = slurm_executor({**params, "name": spec["name"]}, str(sweep_dir / ".submitit" / "%j"))
        jobs = executor.map_array(array_task, [str(sweep_dir)] * tasks, [failed_before] * tasks)
        array = jobs[0].job_id.split("_")[0]
        note_array(sweep_dir, array)
        out.write(f"array {array}: {tasks} worker task(s); their logs: {sweep_dir / '.submitit'}\n")
        out.flush()
        study = open_study(sweep_dir, spec)
        shown: set[int] = set()
        finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        try:
            while True:
                ended = all(job.done() for job in jobs)
                for trial in study.get_trials(deepcopy=False, states=finished):
                    if trial.number not in shown:
                        shown.add(trial.number)
                        value = f" {spec['metric']} {trial.value:.4g}" if trial.state == TrialState.COMPLETE else ""
                        out.write(f"trial {trial.number}: {trial.state.name.lower()}{value}\n")
                        out.flush()
                if ended:
                    break
                time.sleep(poll_s)
        except KeyboardInterrupt:
            for job in jobs:
                job.cancel(check=False)
            raise
        for index, job in enumerate(jobs):
            if job.state != "COMPLETED":
                out.write(f"worker task {index} ({job.job_id}) ended {job.state}: the trial it ran, if any, stays "
                          f"running in the study until `--resume` retries it\n")
        return counts(study)
    finally:
        lock.release()


# --- inside a trial: report the metric each epoch, stop when pruned -----------------------------------------
class TrialPruning:
    """A tracker for a search's trial: reports `metric` to the study after every epoch and sets `pruned` when the
    study's pruner says stop (the run then ends after that epoch's checkpoint, with status `pruned`)."""

    def __init__(self, sweep_dir: Path, number: int) -> None:
        import optuna

        record = read_record(sweep_dir)
        if record is None:
            raise FileNotFoundError(f"no {RECORD} in {sweep_dir}: not a search directory")
        spec = record["spec"]
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=spec["name"], storage=storage(sweep_dir), pruner=build_pruner(spec))
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        self.trial = optuna.trial.Trial(study, trial_id)
        self.metric = spec["metric"]
        self.pruned = False

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.metric not in metrics:
            raise KeyError(f"the search's metric {self.metric} is not logged (is trainer.val_fraction > 0?)")
        self.trial.report(float(metrics[self.metric]), step)
        self.pruned = self.trial.should_prune()

    def finish(self, status: str) -> None:
        del status


# --- report -----------------------------------------------------------------------------------------------
def report(sweep_dir: Path, plots: bool = True) -> str:
    """The trials as a table, the counts, and the best trial as a `spikesweep train` command (plus Optuna's
    history and importance plots as PNG beside the study)."""
    import optuna
    from optuna.trial import TrialState

    record = read_record(sweep_dir)
    if record is None:
        raise FileNotFoundError(f"no {RECORD} in {sweep_dir}: not a search directory")
    spec = record["spec"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=spec["name"], storage=storage(sweep_dir))
    metric, keys = spec["metric"], list(spec["space"])
    lines = [f"search {spec['name']} in {sweep_dir}", "",
             f"| trial | state | {metric} | epochs | " + " | ".join(keys) + " |",
             "|---" * (4 + len(keys)) + "|"]
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.state == TrialState.COMPLETE else (
            t.intermediate_values[t.last_step] if t.last_step is not None else None)
        shown = "-" if value is None else f"{value:.4g}"
        params = " | ".join(_fmt(t.params.get(k)) for k in keys)
        lines.append(f"| {t.number} | {t.state.name.lower()} | {shown} | {len(t.intermediate_values)} | {params} |")
    done = counts(study)
    lines += ["", f"{done['completed'] + done['pruned']} of {spec['n_trials']} trials finished: "
                  f"{done['completed']} completed, {done['pruned']} pruned, {done['failed']} failed, "
                  f"{done['running']} running"]
    if done["completed"]:
        best = study.best_trial
        command = " ".join(["spikesweep", "train", *trial_command(spec, best.params)])
        lines += [f"best: trial {best.number}, {metric} {best.value:.4g} (run directory {sweep_dir / str(best.number)})",
                  f"  {command}"]
    if plots and done["completed"]:
        lines += _plots(study, sweep_dir)
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _plots(study, sweep_dir: Path) -> list[str]:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
        for name, view in (("history", views.plot_optimization_history), ("importance", views.plot_param_importances)):
            try:
                ax = view(study)
            except (ValueError, RuntimeError) as err:  # e.g. importances of a space with a single value
                written.append(f"{name} plot skipped: {err}")
                continue
            path = sweep_dir / f"{name}.png"
            ax.figure.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(ax.figure)
            written.append(f"{name} plot: {path}")
    return written
