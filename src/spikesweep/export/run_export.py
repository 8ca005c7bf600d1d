"""`spikesweep export RUN_DIR --to nir|fpga`: rebuild the run's model from its checkpoint (the project's one
assembly path) and write it for the target."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

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


def load_run(run: Path, with_data: bool = True) -> LoadedRun:
    path = find_checkpoint(run)
    state = ckpt.load(path)
    cfg = state["config"]
    cfg = {**cfg, "neuron": {**cfg["neuron"], "backend": "torch"}} if "backend" in cfg["neuron"] else cfg
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
    # accuracy: the float chain vs the package run by the integer simulator from its files
    ex, ey = _samples(data.test, eval_samples)
    torch.manual_seed(0)
    x_seq = chain.encode(ex)
    float_pred = chain.run(x_seq).mean(0).argmax(-1)
    pkg = int_sim.load_package(out)
    x_int = quantise_input(net, chain, ex) if chain.encoding == "direct" else x_seq.transpose(0, 1).long().numpy()
    q_pred = torch.from_numpy(int_sim.predictions(pkg, int_sim.run(pkg, x_int)))
    report = {"bits": bits, "acc_bits": net.acc_bits, "eval_samples": int(len(ey)),
              "float_accuracy": float((float_pred == ey).float().mean()),
              "quantised_accuracy": float((q_pred == ey).float().mean()), "memory_kB": man["memory_kB"],
              "checkpoint": str(loaded.checkpoint)}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return (f"wrote {out} ({bits}-bit weights, {net.acc_bits}-bit membranes, {man['memory_kB']} kB of memories, "
            f"golden traces for {man['golden']['samples']} test samples)\n"
            f"accuracy on {len(ey)} test samples: float {report['float_accuracy']:.2%}, "
            f"quantised (integer simulator) {report['quantised_accuracy']:.2%}")
