"""`make bench`: every benchmark, one BENCHMARKS.md. Figures are ratios against a baseline measured in the
same process on the same machine, so they travel between machines; absolute times are printed beside them.

With --quick the neuron grid is small and the run checks its speed-up ratios against the committed
bench/neuron-quick.csv: a ratio that fell by more than 2x fails the run.
"""

import csv
import json
import os
import platform
from datetime import date
from pathlib import Path

import torch

from spikesweep.tables import markdown, write_csv


def print_rows(rows: list[dict]) -> None:
    print(markdown(rows))


def machine() -> str:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device}; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; {date.today()}")


def regressions(rows: list[dict], baseline: Path, min_ms: float = 5.0) -> list[str]:
    """Cases whose speed-up fell below half the committed one. Cases under `min_ms` are too noisy to judge
    on a shared machine, and a flagged case is measured again (more repeats) before it counts."""
    if not baseline.exists():
        return []
    from spikesweep.bench.neuron import time_case

    with baseline.open() as f:
        old = {(r["case"], r["mode"], r["backend"]): float(r["speedup"]) for r in csv.DictReader(f)}
    reference = {(r["case"], r["mode"]): r["ms"] for r in rows if r["backend"] == "torch"}
    failed = []
    for r in rows:
        key = (r["case"], r["mode"], r["backend"])
        if key not in old or min(r["ms"], reference[key[:2]]) < min_ms or r["speedup"] >= old[key] / 2:
            continue
        shape, train = tuple(json.loads(r["case"])), r["mode"] == "train"
        again = time_case("torch", shape, train, 10, 3) / time_case(r["backend"], shape, train, 10, 3)
        if again < old[key] / 2:
            failed.append(f"{r['case']} {r['mode']} {r['backend']}: speed-up {again:.2f} < half of {old[key]:.2f}")
    return failed


def write_report(root: Path, quick: bool, backends: tuple[str, ...] | None = None) -> str:
    from spikesweep.bench.coco_eval import bench_coco_eval
    from spikesweep.bench.data import bench_datasets
    from spikesweep.bench.detect_demo import bench_detect_demo
    from spikesweep.bench.dispatch import bench_dispatch
    from spikesweep.bench.model import bench_paper_models
    from spikesweep.bench.neuron import available_backends, bench_neuron, plot
    from spikesweep.bench.packing import bench_packing
    from spikesweep.bench.startup import bench_startup
    from spikesweep.bench.stdp import bench_stdp

    bench_dir = root / "bench"
    backends = backends or (("torch", "psn") if quick else available_backends())
    neuron, stdp = bench_neuron(quick, backends), bench_stdp(quick)
    models = [] if quick else bench_paper_models()
    evaluators = bench_coco_eval(200 if quick else 1000)
    detect_demo = [] if quick else bench_detect_demo()
    packing = [] if quick else bench_packing()
    loaders, absent = bench_datasets(3 if quick else 20)
    startup, dispatch = bench_startup(repeats=2 if quick else 5), bench_dispatch(100)
    name = "neuron-quick.csv" if quick else "neuron.csv"
    failed = regressions(neuron, bench_dir / name) if quick else []
    if not (quick and (bench_dir / name).exists()):
        write_csv(neuron, bench_dir / name)
    if not quick:
        plot(neuron, bench_dir / "neuron.png")
        write_csv(stdp, bench_dir / "stdp.csv")
        write_csv(models, bench_dir / "models.csv")
        write_csv(detect_demo, bench_dir / "detect_demo.csv")
        write_csv(packing, bench_dir / "packing.csv")
    write_csv(startup, bench_dir / "startup.csv")
    write_csv(dispatch, bench_dir / "dispatch.csv")
    write_csv(loaders, bench_dir / "data.csv")
    text = "\n\n".join([
        "# Benchmarks",
        f"Machine: {machine()}. Medians of repeated runs after warm-up; speed-ups are against a baseline "
        "measured in the same process. Regenerate with `make bench` (full) or `make bench QUICK=1`.",
        "## 1. Neuron backends (the survey's single-layer grid)",
        "Reference (`torch`): spikingjelly's multi-step `LIFNode` on its Torch reference loop (autograd). "
        f"Measured here: {', '.join(backends)} (docs/neurons.md says what each is; compile time excluded). "
        "`psn`: spikingjelly's PSN (no reset: one T x T matmul). `bandwidth_pct`: the least traffic of a "
        "fused neuron (train: read x, write spikes, read their gradient and one saved state, write x's "
        "gradient, 5 tensors of x's size; inference: read x, write spikes, 2) over the time taken, as a "
        "share of `copy_gbs`, the bandwidth of a plain tensor copy (read + write of 512 MiB) in the same "
        "process: 100 would be a neuron as fast as memory allows. On a GPU: `spikesweep bench neuron --device cuda`.",
        markdown(neuron),
        "STDP (method=bp_stdp): the weight update of `mnist_stdp_cnn`'s convs from the same recorded spikes, "
        "spikingjelly's multi-step STDPLearner vs spikesweep's BatchedSTDPLearner (docs/stdbp.md).",
        markdown(stdp),
        "## 2. Model train steps",
        markdown(models) if models else "Full report only (`make bench`): minutes on a CPU.",
        "The papers' models at T=4, 32x32, batch 8, as a user gets them (`neuron: lif`, `backend: auto`, "
        "float32) against the same architecture on spikingjelly's eager LIFNode (`eager_lif`); peak memory is "
        "what one train step adds; the `_pct` columns split the eager model's profiled self time.",
        "## 3. Startup",
        markdown(startup),
        "Whole processes from launch to exit (`seconds` wall, `cpu_s` of the child) and, for the run, its own "
        "`first_step_s` (summary.json's `first_step_from_process_s`): from the start of the process to the end "
        "of its first optimizer step, the figure "
        "the 5 s target is about (the run then evaluates the test split and writes its files).",
        "## 4. Sweep dispatch",
        markdown(dispatch),
        "Job packing (`hydra.launcher.jobs_per_task=K`): K digits jobs (small CNN, 2 epochs) started at once as a "
        "packed task starts them, each told to take 1/K of the CPUs, on this machine's device: their summed "
        "training samples/s and its ratio to one job alone (`throughput_x`), and jobs finished per hour against "
        "one at a time (`jobs_per_hour_x`, start-up included). `spikesweep bench packing` (on a GPU it shares "
        "the GPU).",
        markdown(packing) if packing else "Job packing: full report only (a minute).",
        "## 5. Data loaders",
        markdown(loaders),
        "Each dataset present under `paths.data_dir` (not here: " + (", ".join(absent) or "none") + "): "
        "samples/s of the real train loader (`trainer.num_workers: auto`, the default: its workers as a run "
        "on this device and allocation gets them; its augmentation) against samples/s of a small "
        "model's train step on this device; `ratio` >= 2 means the loader will not limit training.",
        "## 6. Detection",
        markdown(evaluators),
        "One COCO evaluation of synthetic detections (tasks/coco_metrics.py) by pycocotools, the reference, and "
        "by faster-coco-eval, which task=detection uses: same numbers, `speedup` against pycocotools.",
        markdown(detect_demo) if detect_demo else "The detection demo's training: full report only (minutes).",
        "Other models, whole-model compile and bf16 (section 2), and other loader settings (section 5) are "
        "measured per model and dataset: `spikesweep bench model model=spikingformer_4_384 dataset=cifar10 "
        "--compile` and `spikesweep bench data dataset=cifar10_dvs trainer.num_workers=8`.",
    ])
    notes = bench_dir / "notes.md"  # what was measured by hand (profiles, GPU runs): kept across regenerations
    if not quick and notes.exists():
        text += "\n\n" + notes.read_text().strip()
    if failed:
        text += "\n\n## Regressions\n" + "\n".join(f"- {f}" for f in failed)
    report = root / ("BENCHMARKS.quick.md" if quick else "BENCHMARKS.md")
    report.write_text(text + "\n")
    if failed:
        raise SystemExit("benchmark regression:\n" + "\n".join(failed))
    return text
