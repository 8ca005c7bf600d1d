"""`spikesweep export RUN_DIR --to nir|fpga`: rebuild the run's model from its checkpoint (the project's one
assembly path) and write it for the target."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from spikesweep.assemble import Assembly, assemble
from spikesweep.engine import checkpoint as ckpt
from spikesweep.export.chain import Chain, extract


def find_checkpoint(run: Path) -> Path:
    """RUN_DIR's best.pt, else its last.pt; a .pt file as given."""
    if run.is_file():
        return run
    for name in ("best.pt", "last.pt"):
        if (run / "checkpoints" / name).is_file():
            return run / "checkpoints" / name
    raise ckpt.CheckpointError(f"no checkpoints/best.pt or checkpoints/last.pt under {run}")


@dataclass
class LoadedRun:
    checkpoint: Path
    config: dict[str, Any]
    parts: Assembly
    chain: Chain


def load_run(run: Path, with_data: bool = True, paths: dict[str, Any] | None = None) -> LoadedRun:
    """`paths`: this machine's (data_dir, ...) in place of those the run was trained with."""
    path = find_checkpoint(run)
    state = ckpt.load(path)
    cfg = state["config"]
    cfg = {**cfg, "neuron": {**cfg["neuron"], "backend": "torch"}} if "backend" in cfg["neuron"] else cfg
    cfg = {**cfg, "paths": paths} if paths is not None else cfg
    parts = assemble(cfg, with_data=with_data, eager=True)  # the eager torch loop: spikingjelly's own nodes
    ckpt.load_model_weights(parts.model, state, path)
    parts.model.eval()
    sample = None
    if parts.data is not None:
        sample = torch.stack([parts.data.test[i][0] for i in range(min(4, len(parts.data.test)))])
    return LoadedRun(path, cfg, parts, extract(parts.model, parts.meta, sample))


def _samples(dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(n, len(dataset))
    items = [dataset[i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items])


def export(run: Path, to: str, out: Path | None = None, *, dt: float = 1e-4, bits: int = 8, samples: int = 16,
           calib_samples: int = 256, eval_samples: int = 512) -> str:
    """Write the run for `to` ('nir' | 'fpga'); returns the lines to print."""
    from spikesweep.export.nir import write_nir

    loaded = load_run(run, with_data=True)
    root = run if run.is_dir() else run.parent
    if to == "nir":
        path = write_nir(loaded.chain, out or root / "export" / "net.nir", dt)
        return f"wrote {path} ({len(loaded.chain.layers)} layers, BN folded, dt {dt:g} s, T {loaded.chain.time_steps})"
    return export_fpga(loaded, out or root / "export" / f"fpga_{bits}b", bits, samples, calib_samples, eval_samples)


def export_fpga(loaded: LoadedRun, out: Path, bits: int, samples: int, calib_samples: int, eval_samples: int) -> str:
    report = write_fpga(loaded, out, bits, samples, calib_samples, eval_samples)
    return (f"wrote {out} ({bits}-bit weights, {report['acc_bits']}-bit membranes, {report['memory_kB']} kB of "
            f"memories, golden traces for {report['golden_samples']} test samples)\n"
            f"accuracy on {report['eval_samples']} test samples: float {report['float_accuracy']:.2%}, "
            f"quantised (integer simulator) {report['quantised_accuracy']:.2%}")


def write_fpga(loaded: LoadedRun, out: Path, bits: int, samples: int, calib_samples: int, eval_samples: int,
               batch: int = 256) -> dict[str, Any]:
    """The package in `out`, and its report (also out/report.json): the float chain's accuracy beside the
    package's as the integer simulator runs it from its files, on the same spike-coded test samples, and the
    synaptic operations per sample that the package does."""
    import json

    from spikesweep.export import int_sim
    from spikesweep.export.fixed_point import quantise, quantise_input
    from spikesweep.export.fpga_package import write_package

    if not 2 <= bits <= 24:
        raise ValueError(f"--bits must be 2..24, got {bits}")
    chain, data = loaded.chain, loaded.parts.data
    calib, _ = _samples(data.train, calib_samples)  # the input's power-of-two scale comes from training data
    net = quantise(chain, calib, bits)
    gx, gy = _samples(data.test, samples)
    torch.manual_seed(0)  # spike codes (poisson) draw random numbers
    man = write_package(net, out, quantise_input(net, chain, gx), gy.numpy())
    pkg = int_sim.load_package(out)
    n = min(eval_samples, len(data.test))
    float_right = quantised_right = 0
    ops = {"acs": 0, "macs": 0}
    torch.manual_seed(0)
    for start in range(0, n, batch):  # T x batch x input at a time: the whole test set at T=100 would not fit
        ex, ey = _samples(Subset(data.test, range(start, min(start + batch, n))), batch)
        x_seq = chain.encode(ex)
        float_right += int((chain.run(x_seq).mean(0).argmax(-1) == ey).sum())
        x_int = quantise_input(net, chain, ex) if chain.encoding == "direct" else x_seq.transpose(0, 1).long().numpy()
        outs = int_sim.run(pkg, x_int)
        quantised_right += int((torch.from_numpy(int_sim.predictions(pkg, outs)) == ey).sum())
        batch_ops = int_sim.synaptic_ops(pkg, x_int, outs)
        ops = {k: v + batch_ops[k] for k, v in ops.items()}
    report = {"bits": bits, "acc_bits": net.acc_bits, "eval_samples": n, "golden_samples": man["golden"]["samples"],
              "float_accuracy": float_right / n, "quantised_accuracy": quantised_right / n,
              "memory_kB": man["memory_kB"], "synops_per_sample": (ops["acs"] + ops["macs"]) / n,
              "acs_per_sample": ops["acs"] / n, "macs_per_sample": ops["macs"] / n,
              "checkpoint": str(loaded.checkpoint)}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report
