"""wandb runs: online with an API key, otherwise real offline runs under the run dir (`wandb sync` later)."""

import logging
import os
import secrets
import string
from pathlib import Path
from typing import Any

from spikesweep.tracking.jsonl import read_metrics
from spikesweep.tracking.wandb_offline import logged_steps

log = logging.getLogger(__name__)

def wandb_mode(requested: str) -> str:
    """'auto' is online only when credentials exist, so a laptop or compute node never blocks on login."""
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    has_netrc = (Path.home() / ".netrc").exists() and "api.wandb.ai" in (Path.home() / ".netrc").read_text()
    return "online" if os.environ.get("WANDB_API_KEY") or has_netrc else "offline"


def run_group(cfg: Any) -> str:
    """One wandb group per named multirun (its `name`), so `report NAME --wandb` can find its runs."""
    return cfg.logger.group or cfg.name


def own_wandb_core() -> None:
    """Forget a wandb service inherited from the process that launched this one.

    wandb exports WANDB_SERVICE (`<version>-<pid of the process that started it>-<transport>-...`) so that
    child processes share its wandb-core. A run launched by something that used wandb itself (a notebook, a
    driver script, a test runner) would then log through the launcher's core, which keeps the run id "in use"
    after the run is killed for as long as the launcher lives: the resumed run could not continue its wandb
    run. A run owns its core; one this process started itself is kept.
    """
    token = os.environ.get("WANDB_SERVICE", "").split("-")
    if len(token) > 2 and token[1] != str(os.getpid()):
        del os.environ["WANDB_SERVICE"]


class WandbTracker:
    def __init__(
        self,
        run_dir: Path,
        project: str,
        entity: str | None,
        group: str,
        name: str,
        config: dict[str, Any],
        run_id: str,
        mode: str,
        tags: list[str],
        replay_from: Path | None = None,
    ) -> None:
        """`replay_from` (metrics.jsonl): on resume, log the epochs it holds that the wandb run lacks."""
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        own_wandb_core()
        self.run = wandb.init(
            project=project, entity=entity, group=group, name=name, config=config, id=run_id, resume="allow",
            dir=str(run_dir), mode=wandb_mode(mode), tags=tags,
            settings=wandb.Settings(console="off", x_disable_stats=True),
        )
        self.held = self._steps_held(run_dir, run_id)
        if replay_from is not None:
            self.replay(read_metrics(replay_from))

    def _steps_held(self, run_dir: Path, run_id: str) -> set[int]:
        """The epochs the wandb run already has, so none is logged twice. Offline: those in the earlier
        offline files of this run id (a run killed with SIGKILL loses what wandb-core had not written: those
        are missing, and replayed). Online: the server's history is a prefix, every step below run.step."""
        if getattr(self.run, "disabled", False):
            return set()
        if self.run.offline:
            current = Path(self.run.dir).parent / f"run-{run_id}.wandb"
            return logged_steps(run_dir / "wandb", run_id, exclude=current)
        return set(range(self.run.starting_step))

    def replay(self, rows: list[dict[str, Any]]) -> None:
        """Log the metrics.jsonl rows (one per epoch) the wandb run lacks, in order."""
        missing = [row for row in rows if row["epoch"] not in self.held]
        for row in missing:
            self.log({k: v for k, v in row.items() if k != "epoch"}, row["epoch"])
        if missing:
            log.info("wandb: replayed epochs %s from metrics.jsonl", ", ".join(str(r["epoch"]) for r in missing))

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if step in self.held:  # an epoch redone after a kill: wandb keeps the first record of it
            return
        self.run.log(metrics, step=step)
        self.held.add(step)

    def finish(self, status: str) -> None:
        self.run.summary["status"] = status
        if status == "preempted":  # shown as preempted, not crashed, until the requeued job resumes it
            self.run.mark_preempting()
        self.run.finish(exit_code=0 if status == "completed" else 1)


def new_run_id() -> str:
    """wandb-style 8-character id, drawn without touching the seeded RNGs."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))
