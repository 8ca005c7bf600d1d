"""wandb runs: online with an API key, otherwise real offline runs under the run dir (`wandb sync` later)."""

import os
import secrets
import string
from pathlib import Path
from typing import Any


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
    ) -> None:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=project,
            entity=entity,
            group=group,
            name=name,
            config=config,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            mode=wandb_mode(mode),
            tags=tags,
            settings=wandb.Settings(console="off", x_disable_stats=True),
        )

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self.run.log(metrics, step=step)

    def finish(self, status: str) -> None:
        self.run.summary["status"] = status
        if status == "preempted":  # shown as preempted, not crashed, until the requeued job resumes it
            self.run.mark_preempting()
        self.run.finish(exit_code=0 if status == "completed" else 1)


def new_run_id() -> str:
    """wandb-style 8-character id, drawn without touching the seeded RNGs."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))
