"""`spikesweep prepare`: check a dataset's files and build its caches before a sweep."""

from pathlib import Path

from spikesweep.cli.common import composed


def cmd_prepare(args: list[str]) -> int:
    """Check a dataset's files and build what it caches (DVS frames), once, so a sweep's jobs start ready."""
    import json
    import logging
    import time

    from spikesweep.data import build_datasets

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = composed(args)
    started = time.perf_counter()
    bundle = build_datasets(cfg.dataset, cfg.paths.data_dir)  # the dataset alone: what prepare is for
    meta = bundle.meta
    kind = "frames per sample" if meta.temporal else "repeats of a static input"
    print(f"{cfg.dataset.name}: {len(bundle.train)} train / {len(bundle.test)} test samples, {meta.num_classes} "
          f"classes, {list(meta.input_shape)} per step, T={meta.time_steps} ({kind}); ready in "
          f"{time.perf_counter() - started:.1f} s")
    print(f"source: {meta.source}")
    stats_file = Path(meta.source) / "prepare.json"
    if stats_file.is_file():
        stats = json.loads(stats_file.read_text())
        counted = [k for k in ("samples", "events") if k in stats]  # generated images count no events
        built = ", ".join(f"{stats[k]} {k}" for k in counted)
        rates = ", ".join(f'{stats[k + "_per_s"]} {k}/s' for k in counted)
        print(f"cache built from {built} in {stats['seconds']} s: {rates}")
    import torch

    torch.set_num_threads(1)  # as in a DataLoader worker: one thread per process
    count = min(256, len(bundle.train))
    started = time.perf_counter()
    for i in range(count):
        bundle.train[i]
    print(f"read: {count / (time.perf_counter() - started):.0f} samples/s (one worker, train transforms)")
    return 0

