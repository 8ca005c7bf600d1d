"""`spikesweep doctor`: every neuron backend on this machine, verified or not, and its speed."""

import argparse

from spikesweep.cli.common import UserError


def cmd_doctor(args: list[str]) -> int:
    from spikesweep.spiking import build_surrogate
    from spikesweep.spiking.backends import doctor

    parser = argparse.ArgumentParser(prog="spikesweep doctor")
    parser.add_argument("--surrogate", default="atan", help="the surrogate checked and timed (default atan)")
    parser.add_argument("--backends", default=",".join(doctor.BACKENDS))
    parser.add_argument("--shape", help=f"[T, ...] of the timed layer (default {doctor.SHAPE}, on a CPU {doctor.CPU_SHAPE})")
    parser.add_argument("--repeats", type=int, default=3)
    opts = parser.parse_args(args)
    backends = tuple(opts.backends.split(","))
    unknown = sorted(set(backends) - set(doctor.BACKENDS))
    if unknown:
        raise UserError(f"unknown backend(s) {unknown}; valid: {', '.join(doctor.BACKENDS)}")
    shape = tuple(int(n) for n in opts.shape.split(",")) if opts.shape else None
    print(doctor.header(), flush=True)
    rows = doctor.diagnose(build_surrogate({"name": opts.surrogate}), backends, shape, opts.repeats)
    print(doctor.table(rows))
    return 1 if any(r["status"] == "failed" for r in rows) else 0

