"""`spikesweep export RUN --to nir|fpga`: a trained network for a neuromorphic simulator or a hardware designer."""

import argparse
from pathlib import Path

from spikesweep.cli.common import UserError


def cmd_export(args: list[str]) -> int:
    """A trained run as a NIR graph, or as a fixed-point FPGA package (memories, params.vh, golden traces).
    An unsupported model is a ValueError (UnsupportedModel) naming its first unsupported layer: one line."""
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
    except (CheckpointError, KeyError) as err:  # not a run of ours, or a checkpoint without its config
        raise UserError(str(err)) from None
    return 0
