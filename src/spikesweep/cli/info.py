"""`spikesweep info` and `spikesweep verify-spikes`: inspect a model without training it."""

import argparse
from pathlib import Path

from spikesweep.cli.common import UserError, checked, composed


def cmd_info(args: list[str]) -> int:
    """Inspect a model on a dataset's input shape without training; the shape comes from the dataset's config,
    so no data files are needed."""
    from spikesweep.assemble import assemble
    from spikesweep.metrics.energy import profile

    checked(args)
    cfg = composed(args, validated=False)
    parts = assemble(cfg, with_data=False, eager=True)
    meta, model = parts.meta, parts.model
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
    except (ckpt.CheckpointError, KeyError) as err:  # not a checkpoint of ours, or one without its config
        raise UserError(str(err)) from None
    loader = torch.utils.data.DataLoader(bundle.test, batch_size=16)
    batches = [x for x, _ in (b for _, b in zip(range(opts.batches), loader))]
    check = verify_expansion(model, batches, opts.atol, opts.rtol)
    print(f"{cfg['model']['name']}: {check.expanded_layers} layers expanded, up to {check.max_substeps} binary "
          f"sub-steps; max |logit difference| {check.max_abs_diff:.3g} (max |logit| {check.max_abs_logit:.3g}, "
          f"tolerance {check.atol:g} + {check.rtol:g} x max |logit|): {'MATCH' if check.match else 'MISMATCH'}")
    return 0 if check.match else 1

