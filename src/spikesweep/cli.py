"""`spikesweep` command line. Heavy modules (torch, hydra) are imported inside the subcommands that need
them, so `spikesweep list` answers instantly."""

import argparse
import sys
from pathlib import Path

from spikesweep import REPO_ROOT

USAGE = """spikesweep <command> [args]

commands:
  train [overrides...]                one run, e.g. `spikesweep train model=small_cnn surrogate=sigmoid`
  sweep NAME [overrides...] [--dry-run]   the named multirun experiments/NAME.yaml
  list                                the named multiruns
  compare DIR                         table of every run under DIR (markdown; CSV written beside)
  report NAME [--dir DIR]             a multirun beside the paper's numbers: tables, mean ± std, plots
  report NAME --wandb [--entity E --project P]   the same multirun as a W&B report of its wandb group
  prepare dataset=NAME [overrides...]  check the files, convert/integrate/cache once (before a sweep)
  bench neuron [--quick] [--device cuda] [--backends torch,cupy,...]
                                      neuron backends on [T, N] (the survey's speed grid): CSV, PNG, table
  bench report [--quick]               every benchmark -> bench/*.csv + BENCHMARKS.md
  bench stdp [--quick]                 bp_stdp's STDP update: spikingjelly's learner vs. the batched one
  bench dispatch [--points N]          compose a N-point sweep; with $SLURM_CONF, also submit it as an array
  bench data dataset=NAME [overrides...] [--batches N]   loader samples/s vs the train step's
  bench model model=X dataset=Y [--batch B] [--steps N] [--compile] [--amp bf16] [--checkpoint-activations]
                                      train-step samples/s, memory and neuron/conv time split vs. spikingjelly's eager LIFNode
  info model=X dataset=Y [overrides...]   params, FLOPs, SOPs and energy at init, memory per sample
  verify-spikes CKPT [--batches N]    a trained model's logits with integer spikes vs. each integer k sent
                                      as k binary spikes over sub-steps (SDT v3's claim); exit 1 on mismatch
  export RUN --to nir|fpga [--bits W] [--samples N] [-o OUT]
                                      the trained network as a NIR graph, or a fixed-point FPGA package
                                      (manifest, .mem/.coe memories, params.vh, golden traces)
  import-ckpt --from spikingformer|sdtv3 PATH dataset=NAME [model=NAME] [overrides...] [-o OUT]
                                      an upstream checkpoint as ours, for `train trainer.eval_only=true ckpt=OUT`
"""


def _hydra(args: list[str]) -> int:
    """Run the Hydra task with our config dir and the repo root (for experiments/) on the search path."""
    from spikesweep.run import hydra_main
    from spikesweep.sweeps.callback import LAST_SWEEP

    LAST_SWEEP.clear()
    sys.argv = ["spikesweep", "--config-dir", str(REPO_ROOT), *args]
    hydra_main()
    return 1 if LAST_SWEEP.get("failed") else 0


def cmd_train(args: list[str]) -> int:
    from spikesweep.override_check import check

    problem = check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return _hydra(args)


def cmd_sweep(args: list[str]) -> int:
    from spikesweep.sweeps import catalogue

    parser = argparse.ArgumentParser(prog="spikesweep sweep")
    parser.add_argument("name")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs without running them")
    opts, overrides = parser.parse_known_args(args)
    try:
        sweep = catalogue.load(opts.name)
        for o in overrides:  # an axis given on the command line: `key=a,b` (an empty value is a typo)
            key, _, value = o.partition("=")
            if "," in value or (not value and not key.startswith(("+", "~", "-"))):
                catalogue.split_values(value, key)
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from spikesweep.override_check import check

    problem = check(["-m", f"+experiments={sweep.name}", *overrides])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if opts.dry_run:
        return _dry_run(sweep, overrides)
    return _hydra(["-m", f"+experiments={sweep.name}", *overrides])


def _dry_run(sweep, overrides: list[str]) -> int:
    """Expand the sweep as Hydra's basic sweeper would, composing every job to catch config errors."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra.errors import HydraException

    from spikesweep.compose import compose_config
    from spikesweep.config_schema import ConfigError, validate

    params = {**sweep.params}
    fixed = []
    for o in overrides:
        key, _, value = o.partition("=")
        if "," in value:
            params[key] = value
        else:
            fixed.append(o)
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    jobs = BasicSweeper.split_arguments(parsed, None)[0]
    for i, job in enumerate(jobs):
        try:
            validate(compose_config([f"+experiments={sweep.name}", *fixed, *job]))
        except (HydraException, ConfigError) as err:
            print(f"error: job {i} ({' '.join(job)}): {str(err).splitlines()[0]}", file=sys.stderr)
            return 2
        print(f"{i:4d}  {' '.join(job)}")
    launcher = compose_config([f"+experiments={sweep.name}", *fixed, *jobs[0]], hydra_config=True).hydra.launcher
    gpus = (launcher.get("gpus_per_node") or 0) * (launcher.get("nodes") or 1)
    estimate = ""
    if "timeout_min" in launcher:  # an upper bound: every job using its whole time limit
        estimate = f", at most {len(jobs) * gpus * launcher.timeout_min / 60:.1f} GPU-hours ({gpus} GPU(s) x {launcher.timeout_min} min per job)"
    print(f"{len(jobs)} jobs in '{sweep.name}'{estimate}")
    return 0


def cmd_list(args: list[str]) -> int:
    from spikesweep.sweeps import catalogue

    del args
    for name in catalogue.names():
        sweep = catalogue.load(name)
        paper = f" [{sweep.paper}]" if sweep.paper else ""
        print(f"{name:28s} {sweep.job_count:4d} jobs  {sweep.description}{paper}")
    return 0


def cmd_compare(args: list[str]) -> int:
    from spikesweep.sweeps.compare import compare

    if len(args) != 1:
        print("usage: spikesweep compare DIR", file=sys.stderr)
        return 2
    try:
        table, _ = compare(Path(args[0]))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(table)
    print(f"\nCSV: {Path(args[0]) / 'compare.csv'}")
    return 0


def _compose(overrides: list[str]):
    """The config `spikesweep train` would run with these overrides (validated), without starting a run."""
    from spikesweep.compose import compose_config
    from spikesweep.config_schema import validate

    cfg = compose_config(overrides)
    validate(cfg)
    return cfg


def cmd_prepare(args: list[str]) -> int:
    """Check a dataset's files and build what it caches (DVS frames), once, so a sweep's jobs start ready."""
    import json
    import logging
    import time

    from hydra.errors import HydraException

    from spikesweep.config_schema import ConfigError
    from spikesweep.data import build_datasets

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = _compose(args)
        started = time.perf_counter()
        bundle = build_datasets(cfg.dataset, cfg.paths.data_dir)
    except (HydraException, ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    meta = bundle.meta
    kind = "frames per sample" if meta.temporal else "repeats of a static input"
    print(f"{cfg.dataset.name}: {len(bundle.train)} train / {len(bundle.test)} test samples, {meta.num_classes} "
          f"classes, {list(meta.input_shape)} per step, T={meta.time_steps} ({kind}); ready in "
          f"{time.perf_counter() - started:.1f} s")
    print(f"source: {meta.source}")
    stats_file = Path(meta.source) / "prepare.json"
    if stats_file.is_file():
        stats = json.loads(stats_file.read_text())
        print(f"cache built from {stats['samples']} samples, {stats['events']} events in {stats['seconds']} s: "
              f"{stats['samples_per_s']} samples/s, {stats['events_per_s']} events/s")
    import torch

    torch.set_num_threads(1)  # as in a DataLoader worker: one thread per process
    count = min(256, len(bundle.train))
    started = time.perf_counter()
    for i in range(count):
        bundle.train[i]
    print(f"read: {count / (time.perf_counter() - started):.0f} samples/s (one worker, train transforms)")
    return 0


def cmd_info(args: list[str]) -> int:
    """Inspect a model on a dataset's input shape without training; the shape comes from the dataset's config,
    so no data files are needed."""
    from spikesweep.assemble import assemble
    from spikesweep.compose import compose_config
    from spikesweep.metrics.energy import profile
    from spikesweep.override_check import check

    problem = check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    cfg = compose_config(args)
    try:
        parts = assemble(cfg, with_data=False, eager=True)
        meta, model = parts.meta, parts.model
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stats = profile(model, tuple(meta.input_shape), meta.time_steps, meta.temporal)
    print(f"| {cfg.model.name} on {cfg.dataset.name} (T={meta.time_steps}, input {tuple(meta.input_shape)}, "
          f"{meta.num_classes} classes) | value |\n|---|---|")
    for key, value in stats.items():
        print(f"| {key} | {value:.4g} |")
    return 0


def cmd_verify_spikes(args: list[str]) -> int:
    """Rebuild a run's model from the config stored in its checkpoint and compare the two spike codings."""
    import torch

    from spikesweep.assemble import assemble
    from spikesweep.engine import checkpoint as ckpt
    from spikesweep.metrics.spike_expansion import verify_expansion

    parser = argparse.ArgumentParser(prog="spikesweep verify-spikes")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--batches", type=int, default=2, help="test batches of 16 samples to compare")
    parser.add_argument("--atol", type=float, default=1e-4)
    parser.add_argument("--rtol", type=float, default=1e-4)
    opts = parser.parse_args(args)
    try:
        state = ckpt.load(opts.checkpoint)
        cfg = state["config"]
        parts = assemble(cfg, eager=True)
        model, bundle = parts.model, parts.data
        ckpt.load_model_weights(model, state, opts.checkpoint)
    except (ckpt.CheckpointError, KeyError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    loader = torch.utils.data.DataLoader(bundle.test, batch_size=16)
    batches = [x for x, _ in (b for _, b in zip(range(opts.batches), loader))]
    check = verify_expansion(model, batches, opts.atol, opts.rtol)
    print(f"{cfg['model']['name']}: {check.expanded_layers} layers expanded, up to {check.max_substeps} binary "
          f"sub-steps; max |logit difference| {check.max_abs_diff:.3g} (max |logit| {check.max_abs_logit:.3g}, "
          f"tolerance {check.atol:g} + {check.rtol:g} x max |logit|): {'MATCH' if check.match else 'MISMATCH'}")
    return 0 if check.match else 1


def cmd_export(args: list[str]) -> int:
    """A trained run as a NIR graph, or as a fixed-point FPGA package (memories, params.vh, golden traces)."""
    parser = argparse.ArgumentParser(prog="spikesweep export")
    parser.add_argument("run", type=Path, help="a run directory (its checkpoints/best.pt or last.pt) or a .pt file")
    parser.add_argument("--to", required=True, choices=["nir", "fpga"])
    parser.add_argument("-o", "--out", type=Path, help="default: RUN/export/net.nir or RUN/export/fpga_<bits>b")
    parser.add_argument("--dt", type=float, default=1e-4, help="seconds per time step, stated in the NIR graph")
    parser.add_argument("--bits", type=int, default=8, help="weight bit width (fpga)")
    parser.add_argument("--samples", type=int, default=16, help="test samples in golden/ (fpga)")
    opts = parser.parse_args(args)
    from spikesweep.engine.checkpoint import CheckpointError
    from spikesweep.export.run_export import export

    try:
        print(export(opts.run, opts.to, opts.out, dt=opts.dt, bits=opts.bits, samples=opts.samples))
    except (CheckpointError, KeyError, ValueError, FileNotFoundError) as err:  # UnsupportedModel is a ValueError
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


# The neuron each upstream model was trained with, used unless the command line names one.
UPSTREAM_NEURONS = {"spikingformer": ["neuron=lif", "surrogate=sigmoid"], "sdtv3": ["neuron=multispike", "surrogate=ste"]}


def cmd_import_ckpt(args: list[str]) -> int:
    """Map an upstream Spikingformer / SDT v3 checkpoint onto our model and write it as our checkpoint."""
    parser = argparse.ArgumentParser(prog="spikesweep import-ckpt")
    parser.add_argument("--from", dest="fmt", required=True, help="spikingformer | sdtv3")
    parser.add_argument("path", type=Path)
    parser.add_argument("-o", "--out", type=Path, help="default: beside PATH, <name without .pth/.tar>.spikesweep.pt")
    opts, overrides = parser.parse_known_args(args)
    from spikesweep.engine.checkpoint import CheckpointError

    try:
        out, command = _import_ckpt(opts.fmt, opts.path, overrides, opts.out)
    except (ValueError, CheckpointError) as err:  # bad checkpoint or config, a model that cannot be built, disk full
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}\nevaluate it: {command}")
    return 0


def _import_ckpt(fmt: str, path: Path, overrides: list[str], out: Path | None) -> tuple[Path, str]:
    from omegaconf import OmegaConf

    from spikesweep.assemble import assemble
    from spikesweep.engine import checkpoint as ckpt
    from spikesweep.models import upstream_checkpoint as upstream
    from spikesweep.override_check import check

    if fmt not in upstream.FORMATS:
        raise ValueError(f"--from '{fmt}' is unknown; valid: {', '.join(upstream.FORMATS)}")
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        raise ValueError(f"unknown option '{flags[0]}'; import-ckpt takes --from, -o and Hydra overrides (key=value)")
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    if not keys & {"dataset", "experiment"}:
        raise ValueError("pass dataset=NAME (or experiment=NAME): it sets the class count and input size the model is built for")
    state = upstream.read_upstream(path)
    upstream.require_recipe(fmt, overrides)
    if not keys & {"model", "experiment"}:
        overrides = [f"model={upstream.infer_model_name(fmt, state)}", *overrides]
    if not keys & {"neuron", "surrogate", "experiment"}:
        overrides = [*UPSTREAM_NEURONS[fmt], *overrides]
    problem = check(overrides)
    if problem:
        raise ValueError(problem)
    cfg = _compose(overrides)
    family = cfg.model.name.split("_")[0]
    if family != fmt:
        raise ValueError(f"--from {fmt} needs a {fmt}_* model, got model={cfg.model.name}")
    model = assemble(cfg, with_data=False).model  # parameter shapes come from the dataset's config
    weights = upstream.map_state(fmt, state, model, cfg.model.name)
    model.load_state_dict(weights)  # strict: every key present and fitting
    stem = path.name
    for suffix in (".tar", ".pth", ".pt", ".ckpt"):  # timm writes model_best.pth.tar
        stem = stem.removesuffix(suffix)
    out = out or path.with_name(f"{stem}.spikesweep.pt")
    ckpt.save_atomic(
        {"model": weights, "config": OmegaConf.to_container(cfg, resolve=True), "imported": {"from": fmt, "source": str(path)}},
        out,
    )
    return out, " ".join(["spikesweep train", *overrides, "trainer.eval_only=true", f"ckpt={out}"])


#: `spikesweep bench WHAT`: each benchmark's one-line description (`bench --help`), in USAGE's order.
BENCHES = {
    "neuron": "neuron backends on [T, N] (the survey's speed grid): CSV, PNG, table",
    "report": "every benchmark -> bench/*.csv + BENCHMARKS.md",
    "stdp": "bp_stdp's STDP update: spikingjelly's learner vs. the batched one",
    "dispatch": "compose an N-point sweep; with $SLURM_CONF, also submit it as an array",
    "data": "loader samples/s vs the train step's (dataset=NAME [overrides...] [--batches N])",
    "model": "train-step samples/s, memory and neuron/conv time split vs. spikingjelly's eager LIFNode",
}


def cmd_bench(args: list[str]) -> int:
    runners = {"model": _bench_model, "neuron": _bench_neuron, "report": _bench_report, "dispatch": _bench_dispatch,
               "stdp": _bench_stdp}
    if args[:1] and args[0] in runners:
        return runners[args[0]](args[1:])
    from hydra.errors import HydraException

    from spikesweep.config_schema import ConfigError

    parser = argparse.ArgumentParser(
        prog="spikesweep bench", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmarks (`spikesweep bench WHAT --help` for each one's options):\n"
        + "\n".join(f"  {name:10s}{text}" for name, text in BENCHES.items()),
    )
    parser.add_argument("what", choices=list(BENCHES))
    parser.add_argument("--batches", type=int, default=20, help="`bench data`: batches to time (after one warm-up)")
    opts, overrides = parser.parse_known_args(args)
    from spikesweep.bench.data import bench_data

    try:
        result = bench_data(_compose(overrides), opts.batches)
    except (HydraException, ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    verdict = "ok: the loader keeps up" if result["ratio"] >= 2 else "the loader may limit training (< 2x)"
    print("\n".join(f"{k:22s} {v}" for k, v in result.items()))
    print(verdict)
    return 0


def _bench_neuron(args: list[str]) -> int:
    """`bench neuron [--quick] [--backends ...] [--device cuda]`: the survey's single-layer speed grid."""
    from spikesweep.bench.neuron import BACKENDS, bench_neuron, plot
    from spikesweep.bench.report import print_rows, write_csv

    parser = argparse.ArgumentParser(prog="spikesweep bench neuron")
    parser.add_argument("--quick", action="store_true", help="a small grid (seconds), for CI")
    parser.add_argument("--backends", help=f"comma list of {','.join(BACKENDS)} (default: all that run here)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--csv", type=Path, default=Path("bench/neuron.csv"), help="a PNG of it is written beside")
    opts = parser.parse_args(args)
    try:
        import torch

        if torch.device(opts.device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {opts.device}: CUDA is not available on this machine")
        rows = bench_neuron(opts.quick, opts.backends.split(",") if opts.backends else None, opts.device)
    except (ValueError, RuntimeError) as err:
        print(f"error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    write_csv(rows, opts.csv)
    plot(rows, opts.csv.with_suffix(".png"))
    print_rows(rows)
    print(f"wrote {opts.csv} and {opts.csv.with_suffix('.png')}")
    return 0


def _bench_dispatch(args: list[str]) -> int:
    """`bench dispatch`: sweep dispatch time, on the SLURM cluster named by $SLURM_CONF when there is one."""
    from spikesweep.bench.dispatch import bench_dispatch
    from spikesweep.bench.report import print_rows, write_csv

    parser = argparse.ArgumentParser(prog="spikesweep bench dispatch")
    parser.add_argument("--points", type=int, default=100, help="jobs in the sweep")
    parser.add_argument("--csv", type=Path, default=Path("bench/dispatch.csv"))
    opts = parser.parse_args(args)
    if opts.points < 1:
        print(f"error: --points must be at least 1, got {opts.points}", file=sys.stderr)
        return 2
    rows = bench_dispatch(opts.points)
    write_csv(rows, opts.csv)
    print_rows(rows)
    return 0


def _bench_stdp(args: list[str]) -> int:
    """`bench stdp [--quick]`: the STDP update of mnist_stdp_cnn's convs, spikingjelly's learner vs ours."""
    from spikesweep.bench.report import print_rows, write_csv
    from spikesweep.bench.stdp import bench_stdp

    parser = argparse.ArgumentParser(prog="spikesweep bench stdp")
    parser.add_argument("--quick", action="store_true", help="T=20, batch 8 instead of the recipe's T=100, batch 64")
    parser.add_argument("--csv", type=Path, default=Path("bench/stdp.csv"))
    opts = parser.parse_args(args)
    rows = bench_stdp(opts.quick)
    write_csv(rows, opts.csv)
    print_rows(rows)
    return 0


def _bench_report(args: list[str]) -> int:
    """`bench report [--quick]`: every benchmark into bench/*.csv and BENCHMARKS.md (`make bench`)."""
    from spikesweep.bench.report import write_report

    parser = argparse.ArgumentParser(prog="spikesweep bench report")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backends", help="neuron backends, e.g. torch,psn (default: all; quick: torch,psn)")
    opts = parser.parse_args(args)
    print(write_report(Path.cwd(), opts.quick, tuple(opts.backends.split(",")) if opts.backends else None))
    return 0


def _bench_model(args: list[str]) -> int:
    """`bench model`: the configured model and neuron vs. the same architecture on spikingjelly's eager LIFNode."""
    import torch

    from spikesweep.bench.model import bench_model, model_rows
    from spikesweep.bench.report import print_rows, write_csv
    from spikesweep.assemble import assemble
    from spikesweep.compose import compose_config
    from spikesweep.override_check import check

    parser = argparse.ArgumentParser(prog="spikesweep bench model")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="torch.compile our model (not the eager reference)")
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--checkpoint-activations", action="store_true", help="recompute model blocks in backward")
    parser.add_argument("--csv", type=Path, default=Path("bench/model.csv"), help="the rows, also printed")
    opts, overrides = parser.parse_known_args(args)
    problem = check(overrides)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    cfg = compose_config(overrides)
    try:
        parts = assemble(cfg, opts.device, with_data=False)
        meta, neuron = parts.meta, parts.neuron
        amp = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[opts.amp]
        results = bench_model(dict(cfg.model), neuron, meta, opts.batch, opts.steps, opts.warmup, opts.compile,
                              torch.device(opts.device), amp, opts.checkpoint_activations)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = model_rows(results, cfg.model.name, cfg.neuron.name, meta.time_steps, opts.batch, opts.device,
                      opts.checkpoint_activations)
    write_csv(rows, opts.csv)
    print_rows(rows)
    return 0



def cmd_report(args: list[str]) -> int:
    from spikesweep.sweeps import catalogue
    from spikesweep.sweeps.report import newest_sweep_dir, report

    parser = argparse.ArgumentParser(prog="spikesweep report")
    parser.add_argument("name", help="a named multirun (experiments/NAME.yaml)")
    parser.add_argument("--dir", type=Path, help="the multirun directory (default: the newest multirun/NAME/*)")
    parser.add_argument("--wandb", action="store_true", help="save a W&B report of the multirun's wandb group")
    parser.add_argument("--entity", help="W&B entity (default: logger.entity, else your default entity)")
    parser.add_argument("--project", help="W&B project (default: logger.project)")
    opts = parser.parse_args(args)
    if (opts.entity or opts.project) and not opts.wandb or opts.dir and opts.wandb:
        print("error: --entity and --project go with --wandb, which reads the runs from W&B, not --dir", file=sys.stderr)
        return 2
    try:
        sweep = catalogue.load(opts.name)
        if opts.wandb:
            return _report_wandb(sweep, opts.entity, opts.project)
        markdown, out = report(opts.dir or newest_sweep_dir(Path.cwd(), opts.name), sweep.reported)
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(markdown)
    print(f"\nreport: {out}")
    return 0


def _report_wandb(sweep, entity: str | None, project: str | None) -> int:
    """The W&B report is built from the catalogue and the runs in W&B; no local run directory is needed."""
    import os

    from spikesweep.sweeps.wandb_report import ReportNotSaved, save

    os.environ.setdefault("WANDB_SILENT", "true")  # wandb's own log lines would bury the one-line error
    try:
        url = save(sweep, entity, project)
    except ReportNotSaved as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"W&B report: {url}")
    return 0


COMMANDS = {
    "train": cmd_train, "sweep": cmd_sweep, "list": cmd_list, "compare": cmd_compare, "prepare": cmd_prepare,
    "bench": cmd_bench,
    "report": cmd_report, "info": cmd_info, "verify-spikes": cmd_verify_spikes, "export": cmd_export, "import-ckpt": cmd_import_ckpt,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command '{command}'; valid: {', '.join(COMMANDS)}\n\n{USAGE}", file=sys.stderr)
        return 2
    return COMMANDS[command](rest)


if __name__ == "__main__":
    sys.exit(main())
