"""The W&B report of a named multirun: its runs found by their wandb group, one panel per sweep axis.

Building the report (`build`) is pure: it only needs the catalogue entry and the composed config, so it is
tested offline. Saving it (`save`) is the only step that talks to the W&B server.

Runs are the finished runs of the multirun's group (`run_group`, the multirun's name). They are grouped
by the axes with more than one value, seeds aside, so each line or bar is one cell of the grid: the mean over its seeds, with the
standard deviation as the band, like the mean ± std table of `spikesweep report NAME`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from omegaconf import DictConfig, OmegaConf

from spikesweep.sweeps.catalogue import NamedSweep, grid, split_values
from spikesweep.sweeps.report import METRIC_NAMES

ENERGY = "energy_mj"
T = TypeVar("T")


class ReportNotSaved(RuntimeError):
    """The W&B server could not be reached, or refused the report."""


@dataclass(frozen=True)
class Target:
    """Where the multirun's runs are in W&B, and the config column each sweep axis sets."""

    project: str
    entity: str | None
    group: str
    columns: dict[str, str]  # sweep axis (an override key) -> wandb config column
    metric: str = "top1"  # the task's metric, logged every epoch as test_<metric>; a run's summary holds the final one


def axis_column(cfg: DictConfig, axis: str) -> str:
    """The config column that tells a run's value of this axis: a group's choice is its `name`, a recipe
    (`recipe=`) is `recipe`, any other key is itself."""
    if axis == "recipe":
        column = "recipe"
    elif isinstance(OmegaConf.select(cfg, axis), DictConfig):
        column = f"{axis}.name"
    else:
        column = axis
    if OmegaConf.select(cfg, column) is None:
        raise ValueError(f"sweep axis '{axis}' sets no config column ({column} is empty): wandb cannot tell its values apart")
    return column


def target(sweep: NamedSweep) -> Target:
    """Read project, entity and group from the config the multirun's first job composes, as its runs did."""
    from spikesweep.compose import compose_config
    from spikesweep.data import meta_from_config
    from spikesweep.tasks import build_task
    from spikesweep.tracking.wandb_tracker import run_group

    cfg = compose_config([f"+experiments={sweep.name}", *grid(sweep.params)[0]])
    columns = {axis: axis_column(cfg, axis) for axis in sweep.params}
    metric = build_task(cfg.task, meta_from_config(cfg.dataset), cfg.trainer).best_metric
    return Target(cfg.logger.project, cfg.logger.entity, run_group(cfg), columns, metric)


def build(sweep: NamedSweep, where: Target, entity: str, project: str | None = None):
    """The wandb_workspaces Report of this multirun (not saved)."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    project = project or where.project
    # the axes that tell cells apart: a single value (a fixed recipe) does not, and seeds are averaged over
    cells = [column for axis, column in where.columns.items()
             if axis != "seed" and len(split_values(sweep.params[axis], axis)) > 1]
    runs = wr.Runset(
        entity=entity,
        project=project,
        name=f"{sweep.name} runs",
        filters=expr.And(expr.Metric("Group") == where.group, expr.Metric("State") == "finished"),
        groupby=[f"config.{column}" for column in cells],
    )
    mean_std = {"groupby_aggfunc": "mean", "groupby_rangefunc": "stddev"}
    logged, name = f"test_{where.metric}", METRIC_NAMES.get(where.metric, where.metric)
    per_axis = [
        wr.BarPlot(title=f"final {name} vs {column}", metrics=[wr.Metric(logged)], groupby=wr.Config(column),
                   orientation="v", title_y=f"final test {name} (%)", **mean_std)
        for column in cells
    ]
    panels = [
        *per_axis,
        wr.LinePlot(title=f"test {name} vs epoch", x="Step", y=[wr.Metric(logged)], title_x="epoch",
                    title_y=f"test {name} (%)", **mean_std),
        wr.ScatterPlot(title=f"final {name} vs energy", x=wr.SummaryMetric(ENERGY), y=wr.SummaryMetric(logged)),
    ]
    blocks = [
        wr.P(f"{sweep.description}. Paper: {sweep.paper or 'none (our ablation)'}."),
        wr.P(f"Runs: the finished runs of wandb group '{where.group}', grouped by "
             f"{', '.join(cells) or 'nothing'}; bands and error bars are the standard deviation over seeds. "
             f"Made by `spikesweep report {sweep.name} --wandb`."),
        wr.PanelGrid(runsets=[runs], panels=panels),
    ]
    reported = {cell: value for cell, value in sweep.reported.items() if value is not None}
    if reported:
        rows = "\n".join(f"| `{cell}` | {value} |" for cell, value in reported.items())
        blocks += [wr.H2("The paper's numbers"), wr.MarkdownBlock(f"| cell | {name} (%) |\n|---|---|\n{rows}")]
    title = f"{sweep.name}: {sweep.paper}" if sweep.paper else sweep.name
    return wr.Report(project=project, entity=entity, title=title[:128], description=sweep.description, blocks=blocks)


def save(sweep: NamedSweep, entity: str | None = None, project: str | None = None) -> str:
    """Build the report and save it to W&B; return its URL. Any failure of the server is ReportNotSaved."""
    where = target(sweep)
    if not (entity or where.entity):
        entity = _remote(sweep, lambda: _api().default_entity)
    report = build(sweep, where, entity or where.entity, project)
    return _remote(sweep, lambda: report.save().url)


def _api():
    import wandb

    return wandb.Api()  # connects and checks the credentials; WANDB_BASE_URL and WANDB_HTTP_TIMEOUT apply


def _remote(sweep: NamedSweep, call: Callable[[], T]) -> T:
    try:
        return call()
    except Exception as err:  # the server's failures come in many types; each becomes one line for the user
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ReportNotSaved(f"the W&B report of '{sweep.name}' was not saved: {reason}") from err
