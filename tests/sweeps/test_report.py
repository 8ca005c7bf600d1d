"""The report of a real demo multirun: numbers from the runs' summary.json, means over seeds, plots."""

import csv
import json
import statistics

import pytest

from spikesweep.sweeps.report import grouped, paper_value, verdicts
from tests.conftest import run_cli


def test_paper_value_picks_the_most_specific_matching_cell():
    reported = {"recipe=a": 90.0, "recipe=a dataset.T=4": 91.0, "recipe=b": 80.0, "model=x": None}
    assert paper_value(["recipe=a", "dataset.T=4", "seed=0"], reported) == 91.0
    assert paper_value(["recipe=a", "dataset.T=2"], reported) == 90.0
    assert paper_value(["recipe=c"], reported) is None
    assert paper_value(["model=x"], reported) is None


def test_grouped_mean_and_std_over_seeds():
    rows = [{"cell": "s=a", "status": "completed", "metric": "top1", "final_top1": v} for v in (90.0, 92.0)]
    rows += [{"cell": "s=b", "status": "completed", "metric": "top1", "final_top1": 80.0},
             {"cell": "s=b", "status": "failed", "metric": "top1", "final_top1": None}]
    by_cell = {g["cell"]: g for g in grouped(rows)}
    assert by_cell["s=a"]["mean_top1"] == 91.0 and by_cell["s=a"]["std_top1"] == pytest.approx(statistics.stdev([90, 92]))
    assert by_cell["s=b"]["runs"] == 1


def test_a_detection_sweep_is_grouped_and_judged_by_its_own_metric():
    rows = [{"cell": "neuron=lif", "status": "completed", "metric": "map50_95", "final_map50_95": v,
             "paper_map50_95": 21.6} for v in (21.0, 21.4)]
    (cell,) = verdicts(grouped(rows))
    assert cell["mean_map50_95"] == pytest.approx(21.2) and cell["verdict"] == "reproduced"
    with pytest.raises(ValueError, match="different metrics"):
        grouped(rows + [{"cell": "x", "status": "completed", "metric": "top1", "final_top1": 90.0}])


def test_report_of_a_real_demo_multirun(tmp_path):
    out = run_cli("sweep", "demo", "trainer.epochs=2", "trainer.max_steps_per_epoch=2", "logger=none",
                  "surrogate=atan,sigmoid", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    rep = run_cli("report", "demo", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    (sweep_dir,) = (tmp_path / "multirun" / "demo").iterdir()
    folder = sweep_dir / "report"
    with (folder / "report.csv").open() as f:
        rows = {r["job"]: r for r in csv.DictReader(f)}
    assert len(rows) == 4
    for job, row in rows.items():
        summary = json.loads((sweep_dir / job / "summary.json").read_text())
        assert float(row["final_top1"]) == pytest.approx(summary["final"]["test_top1"])
    cells = {g["cell"]: g for g in json.loads((folder / "grouped.json").read_text())}
    atan = [json.loads((sweep_dir / j / "summary.json").read_text())["final"]["test_top1"] for j in ("0", "1")]
    assert cells["surrogate=atan"]["mean_top1"] == pytest.approx(statistics.fmean(atan))
    for png in ("accuracy_vs_epoch.png", "final_accuracy_per_cell.png", "accuracy_vs_energy.png"):
        assert (folder / png).read_bytes()[:4] == b"\x89PNG"
    assert "Mean ± std over seeds" in rep.stdout


def test_report_without_runs_says_how_to_make_them(tmp_path):
    out = run_cli("report", "demo", cwd=tmp_path)
    assert out.returncode == 2 and "run `spikesweep sweep demo`" in out.stderr


@pytest.mark.parametrize(("name", "columns"), [
    ("gac_cifar", {"recipe": "recipe", "dataset.T": "dataset.T", "model.encoding": "model.encoding"}),
    ("surrogate_shapes", {"recipe": "recipe", "surrogate": "surrogate.name", "surrogate.width": "surrogate.width"}),
    ("demo", {"surrogate": "surrogate.name", "seed": "seed"}),
])
def test_wandb_report_of_a_named_multirun_is_built_offline(name, columns):
    """Its runs are the multirun's wandb group, grouped by every axis with several values but the seed; one
    panel per such axis (surrogate_shapes and demo have a single recipe, gac_cifar two)."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces import expr

    from spikesweep.sweeps import catalogue
    from spikesweep.sweeps.wandb_report import build, target

    sweep = catalogue.load(name)
    where = target(sweep)
    assert (where.group, where.project, where.columns) == (name, "spikesweep", columns)
    report = build(sweep, where, entity="lab")
    assert report.title.startswith(name) and (sweep.paper or "") in report.title
    assert report.description == sweep.description
    (grid,) = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    (runs,) = grid.runsets
    assert (runs.entity, runs.project) == ("lab", "spikesweep")
    both = expr.expr_to_filters(runs.filters)
    assert both.op == "AND" and {(f.key.section, f.key.name, f.op, f.value) for f in both.filters} == {
        ("run", "group", "=", name), ("run", "state", "=", "finished")}
    cells = [c for axis, c in columns.items() if axis not in ("seed", "recipe") or name == "gac_cifar"]
    assert runs.groupby == [f"config.{c}" for c in cells]

    bars = [p for p in grid.panels if isinstance(p, wr.BarPlot)]
    assert [b.title for b in bars] == [f"final top-1 vs {c}" for c in cells]
    for bar, column in zip(bars, cells):
        assert bar.groupby == wr.Config(column) and bar.metrics == [wr.Metric("test_top1")]
        head, _, rest = column.partition(".")
        # nested config as wandb stores it: {"dataset": {"value": {"T": 4}}}
        assert bar._to_model().config.group_by == ".".join([head, "value", *filter(None, [rest])])
    (line,) = [p for p in grid.panels if isinstance(p, wr.LinePlot)]
    assert line.y == [wr.Metric("test_top1")] and line.groupby_rangefunc == "stddev"
    (scatter,) = [p for p in grid.panels if isinstance(p, wr.ScatterPlot)]
    assert (scatter.x, scatter.y) == (wr.SummaryMetric("energy_mj"), wr.SummaryMetric("test_top1"))
    tables = [b.text for b in report.blocks if isinstance(b, wr.MarkdownBlock)]
    assert all(f"`{cell}` | {value}" in tables[0] for cell, value in sweep.reported.items() if value is not None)


def test_an_axis_without_a_config_column_is_refused():
    from spikesweep.sweeps.wandb_report import axis_column
    from tests.conftest import compose

    cfg = compose("+experiments=demo")
    assert axis_column(cfg, "surrogate") == "surrogate.name"
    with pytest.raises(ValueError, match="sweep axis 'ckpt' sets no config column"):
        axis_column(cfg, "ckpt")


def test_wandb_report_without_a_server_fails_in_one_line(tmp_path):
    """A real wandb client pointed at a closed loopback port: one line on stderr, no traceback, exit 1."""
    env = {"WANDB_API_KEY": "0" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_HTTP_TIMEOUT": "2"}
    out = run_cli("report", "gac_cifar", "--wandb", "--entity", "lab", cwd=tmp_path, env=env, timeout=400)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    prefix = "error: the W&B report of 'gac_cifar' was not saved: "
    # the reason is wandb's (here "Failed to verify credentials with http://127.0.0.1:9: ..."); a loaded
    # machine can time out starting wandb's service instead, so only its presence is checked
    assert len(lines) == 1 and lines[0].startswith(prefix) and len(lines[0]) > len(prefix) + 10, out.stderr


def test_wandb_options_need_wandb(tmp_path):
    out = run_cli("report", "demo", "--entity", "lab", cwd=tmp_path)
    assert out.returncode == 2 and "--entity and --project go with --wandb" in out.stderr
