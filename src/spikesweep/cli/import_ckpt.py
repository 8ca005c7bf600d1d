"""`spikesweep import-ckpt`: an upstream checkpoint (Spikingformer, SDT v3) as ours."""

import argparse
from pathlib import Path

from spikesweep.cli.common import UserError, checked, composed

# The neuron each upstream model was trained with (also its model config's default), written into the
# evaluation command this prints, so that the command states it.
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
    except CheckpointError as err:  # not a checkpoint, or the disk is full
        raise UserError(str(err)) from None
    print(f"wrote {out}\nevaluate it: {command}")
    return 0


def _import_ckpt(fmt: str, path: Path, overrides: list[str], out: Path | None) -> tuple[Path, str]:
    from omegaconf import OmegaConf

    from spikesweep.assemble import assemble
    from spikesweep.engine import checkpoint as ckpt
    from spikesweep.models import upstream_checkpoint as upstream

    if fmt not in upstream.FORMATS:
        raise ValueError(f"--from '{fmt}' is unknown; valid: {', '.join(upstream.FORMATS)}")
    flags = [o for o in overrides if o.startswith("-")]
    if flags:
        raise ValueError(f"unknown option '{flags[0]}'; import-ckpt takes --from, -o and Hydra overrides (key=value)")
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    if not keys & {"dataset", "recipe"}:
        raise ValueError("pass dataset=NAME (or recipe=NAME): it sets the class count and input size the model is built for")
    state = upstream.read_upstream(path)
    upstream.require_recipe(fmt, overrides)
    if not keys & {"model", "recipe"}:
        overrides = [f"model={upstream.infer_model_name(fmt, state)}", *overrides]
    if not keys & {"neuron", "surrogate", "recipe"}:
        overrides = [*UPSTREAM_NEURONS[fmt], *overrides]
    checked(overrides)
    cfg = composed(overrides)
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

