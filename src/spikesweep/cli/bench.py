"""`spikesweep bench WHAT`: the benchmarks; each one's options beyond the config's own keys."""

import argparse
from pathlib import Path

from spikesweep.cli.common import UserError, checked, composed


#: `spikesweep bench WHAT`: each benchmark's one-line description (`bench --help`), in USAGE's order.
BENCHES = {
    "neuron": "neuron backends on [T, N] (the survey's speed grid): CSV, PNG, table",
    "report": "every benchmark -> bench/*.csv + BENCHMARKS.md",
    "stdp": "bp_stdp's STDP update: spikingjelly's learner vs. the batched one",
    "dispatch": "compose an N-point sweep; with $SLURM_CONF, also submit it as an array",
    "status": "`status` and the `--resume` plan on a synthetic N-job sweep (target: under 1 s for 1,000)",
    "data": "loader samples/s vs the train step's (dataset=NAME [overrides...] [--batches N])",
    "model": "train-step samples/s, memory and neuron/conv time split vs. spikingjelly's eager LIFNode",
    "packing": "K jobs sharing one allocation (hydra.launcher.jobs_per_task=K) against one job alone",
    "coco": "the COCO evaluators on synthetic detections: pycocotools (reference) vs. faster-coco-eval (task=detection's)",
    "compile": "a neuron loop eager vs. compiled, its compile time and the calls that repay it, per layer size",
}


def cmd_bench(args: list[str]) -> int:
    runners = {"model": _bench_model, "neuron": _bench_neuron, "report": _bench_report, "dispatch": _bench_dispatch,
               "stdp": _bench_stdp, "status": _bench_status, "coco": _bench_coco,
               "packing": _bench_packing, "compile": _bench_compile}
    if args[:1] and args[0] in runners:
        return runners[args[0]](args[1:])
    parser = argparse.ArgumentParser(
        prog="spikesweep bench", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmarks (`spikesweep bench WHAT --help` for each one's options):\n"
        + "\n".join(f"  {name:10s}{text}" for name, text in BENCHES.items()),
    )
    parser.add_argument("what", choices=list(BENCHES))
    parser.add_argument("--batches", type=int, default=20, help="`bench data`: batches to time (after one warm-up)")
    opts, overrides = parser.parse_known_args(args)
    from spikesweep.bench.data import bench_data

    result = bench_data(composed(overrides), opts.batches)
    verdict = "ok: the loader keeps up" if result["ratio"] >= 2 else "the loader may limit training (< 2x)"
    print("\n".join(f"{k:22s} {v}" for k, v in result.items()))
    print(verdict)
    return 0


def _bench_neuron(args: list[str]) -> int:
    """`bench neuron [--quick] [--backends ...] [--device cuda]`: the survey's single-layer speed grid."""
    from spikesweep.bench.neuron import BACKENDS, bench_neuron, plot
    from spikesweep.bench.report import print_rows
    from spikesweep.tables import write_csv

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
        raise UserError(str(err).splitlines()[0]) from None
    write_csv(rows, opts.csv)
    plot(rows, opts.csv.with_suffix(".png"))
    print_rows(rows)
    print(f"wrote {opts.csv} and {opts.csv.with_suffix('.png')}")
    return 0


def _bench_dispatch(args: list[str]) -> int:
    """`bench dispatch`: sweep dispatch time, on the SLURM cluster named by $SLURM_CONF when there is one."""
    from spikesweep.bench.dispatch import bench_dispatch
    from spikesweep.bench.report import print_rows
    from spikesweep.tables import write_csv

    parser = argparse.ArgumentParser(prog="spikesweep bench dispatch")
    parser.add_argument("--points", type=int, default=100, help="jobs in the sweep")
    parser.add_argument("--csv", type=Path, default=Path("bench/dispatch.csv"))
    opts = parser.parse_args(args)
    if opts.points < 1:
        raise UserError(f"--points must be at least 1, got {opts.points}")
    rows = bench_dispatch(opts.points)
    write_csv(rows, opts.csv)
    print_rows(rows)
    return 0


def _bench_packing(args: list[str]) -> int:
    """`bench packing [--jobs 1,2,4] [overrides...]`: throughput of K packed jobs on this machine's device."""
    from spikesweep.bench.packing import JOB, bench_packing
    from spikesweep.bench.report import print_rows
    from spikesweep.tables import write_csv

    parser = argparse.ArgumentParser(prog="spikesweep bench packing")
    parser.add_argument("--jobs", default="1,2,4", help="the K to measure, comma-separated, 1 first")
    parser.add_argument("--csv", type=Path, default=Path("bench/packing.csv"))
    opts, overrides = parser.parse_known_args(args)
    try:
        jobs = tuple(int(k) for k in opts.jobs.split(","))
    except ValueError:
        raise UserError(f"--jobs {opts.jobs}: comma-separated integers, e.g. 1,2,4") from None
    if jobs[0] != 1 or min(jobs) < 1:
        raise UserError(f"--jobs {opts.jobs}: starts with 1 (the baseline), every K >= 1")
    checked([*JOB, *overrides])
    try:
        rows = bench_packing(jobs, (*JOB, *overrides))
    except RuntimeError as err:
        raise UserError(str(err).splitlines()[0]) from None
    write_csv(rows, opts.csv)
    print_rows(rows)
    return 0


def _bench_status(args: list[str]) -> int:
    """`bench status [--jobs N]`: no torch is imported, as in the commands it times."""
    from spikesweep.bench.sweep_ops import bench_sweep_ops
    from spikesweep.sweeps import resume, status

    parser = argparse.ArgumentParser(prog="spikesweep bench status")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the synthetic sweep")
    opts = parser.parse_args(args)
    if opts.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {opts.jobs}")
    rows = bench_sweep_ops(opts.jobs, lambda d: status.table(d, status.collect(d, False)),
                           lambda d: resume.plan(d, use_slurm=False))
    print("| operation | jobs | seconds | target (s) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['operation']} | {r['jobs']} | {r['seconds']:.3f} | {r['target_s']:g} |")
    return 0 if all(r["seconds"] <= r["target_s"] for r in rows) else 1


def _bench_stdp(args: list[str]) -> int:
    """`bench stdp [--quick]`: the STDP update of mnist_stdp_cnn's convs, spikingjelly's learner vs ours."""
    from spikesweep.bench.report import print_rows
    from spikesweep.tables import write_csv
    from spikesweep.bench.stdp import bench_stdp

    parser = argparse.ArgumentParser(prog="spikesweep bench stdp")
    parser.add_argument("--quick", action="store_true", help="T=20, batch 8 instead of the recipe's T=100, batch 64")
    parser.add_argument("--csv", type=Path, default=Path("bench/stdp.csv"))
    opts = parser.parse_args(args)
    rows = bench_stdp(opts.quick)
    write_csv(rows, opts.csv)
    print_rows(rows)
    return 0


def _bench_compile(args: list[str]) -> int:
    """`bench compile [--sizes 640,8192]`: when compiling a neuron loop pays (a cold Inductor cache)."""
    from spikesweep.bench.compile_payoff import SIZES, bench_compile_payoff
    from spikesweep.bench.report import print_rows
    from spikesweep.tables import write_csv

    parser = argparse.ArgumentParser(prog="spikesweep bench compile")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="neurons per time step, comma list")
    parser.add_argument("--model", action="store_true",
                        help="instead: the whole model's train step (trainer.compile), model=X dataset=Y [...]")
    parser.add_argument("--csv", type=Path, default=Path("bench/compile_payoff.csv"))
    opts, overrides = parser.parse_known_args(args)
    if opts.model:
        rows = [_model_compile(overrides)]
    else:
        if overrides:
            raise UserError(f"unrecognized arguments: {' '.join(overrides)} (config overrides go with --model)")
        rows = bench_compile_payoff(tuple(int(n) for n in opts.sizes.split(",")))
    write_csv(rows, opts.csv)
    print_rows(rows)
    return 0


def _model_compile(overrides: list[str]) -> dict:
    import torch

    from spikesweep.assemble import assemble
    from spikesweep.bench.compile_payoff import bench_model_compile

    checked(overrides)
    cfg = composed(overrides)
    parts = assemble(cfg, torch.device("cpu"), with_data=False)
    meta, batch = parts.meta, int(cfg.trainer.batch_size)
    shape = (batch, meta.time_steps, *meta.input_shape) if meta.temporal else (batch, *meta.input_shape)
    row = bench_model_compile(parts.model, torch.rand(shape), torch.randint(0, meta.num_classes, (batch,)))
    return {"model": cfg.model.name, "neuron_backend": cfg.neuron.get("backend"), "batch": batch} | row


def _bench_coco(args: list[str]) -> int:
    """`bench coco [--images N]`: one COCO evaluation by each evaluator, same detections."""
    from spikesweep.bench.coco_eval import bench_coco_eval
    from spikesweep.bench.report import print_rows

    parser = argparse.ArgumentParser(prog="spikesweep bench coco")
    parser.add_argument("--images", type=int, default=1000, help="images (COCO val: 5000)")
    parser.add_argument("--detections", type=int, default=100, help="false-positive detections per image")
    opts = parser.parse_args(args)
    try:
        rows = bench_coco_eval(opts.images, opts.detections)
    except ModuleNotFoundError as err:
        raise UserError(f"{err.name} is not installed: pip install faster-coco-eval") from None
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
    """`bench model`: the configured model and neuron vs. the same architecture on spikingjelly's eager LIFNode.
    Batch, device, precision, whole-model compile and block recompute are the run's own trainer keys
    (`trainer.batch_size=32 trainer.device=cuda trainer.amp=bf16 trainer.compile=true ...`)."""

    from spikesweep.assemble import assemble
    from spikesweep.bench.model import bench_model, model_rows
    from spikesweep.bench.report import print_rows
    from spikesweep.engine.devices import resolve_amp, resolve_device
    from spikesweep.engine.distributed import DistInfo
    from spikesweep.tables import write_csv

    parser = argparse.ArgumentParser(prog="spikesweep bench model")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--csv", type=Path, default=Path("bench/model.csv"), help="the rows, also printed")
    opts, overrides = parser.parse_known_args(args)
    checked(overrides)
    cfg = composed(overrides)
    trainer = cfg.trainer
    device = resolve_device(trainer.device, DistInfo())
    recompute = trainer.checkpoint_activations == "blocks"
    parts = assemble(cfg, device, with_data=False)
    results = bench_model(dict(cfg.model), parts.neuron, parts.meta, int(trainer.batch_size), opts.steps, opts.warmup,
                          bool(trainer.compile), device, resolve_amp(trainer.amp, device), recompute)
    rows = model_rows(results, cfg.model.name, cfg.neuron.name, parts.meta.time_steps, int(trainer.batch_size),
                      device.type, recompute)
    write_csv(rows, opts.csv)
    print_rows(rows)
    return 0
