"""`spikesweep` command line: one module per subcommand, one user-error type, one handler.

Heavy modules (torch, hydra) are imported inside the subcommands that need them, so `spikesweep list`
answers instantly. A subcommand raises `UserError` (or lets a config, value or file error through) for
anything the user can fix; `main` prints it as one line and exits 2.
"""

import importlib
import sys

from spikesweep.cli.common import UserError

USAGE = """spikesweep <command> [args]

commands:
  train [overrides...]                one run, e.g. `spikesweep train model=small_cnn surrogate=sigmoid`
  sweep NAME [overrides...] [--dry-run] [--max-failures N] [--detach]   the named multirun experiments/NAME.yaml
                                      (a search's NAME runs `search NAME`)
                                      (--detach, under hydra/launcher=slurm: submit and return)
  sweep NAME --resume [SWEEP_DIR] [--rerun failed|all]   run again its jobs that did not complete
  list                                the named multiruns and hyperparameter searches
  search NAME [overrides...] [--workers N] [--dry-run]   an Optuna search (conf/hparams_search/NAME.yaml): trials
                                      run as train jobs, pruned from their validation metric; hparams_search.KEY=V
                                      changes the search (e.g. hparams_search.n_trials=40); with hydra/launcher=slurm
                                      [+cluster=NAME] the N workers are the tasks of one SLURM array
  search NAME --resume [SWEEP_DIR]    continue its study to n_trials (a trial its dead worker left is retried)
  status SWEEP_DIR|NAME [--json] [--watch [SECONDS]]   every job's state, epoch, metrics, error; counts
  compare DIR|NAME                    table of every run under DIR or NAME's newest sweep (markdown; CSV beside)
  report NAME|DIR [--dir DIR] [--check]   a multirun beside the paper's numbers: tables, mean ± std, plots,
                                      each cell reproduced/below/above; --check: exit 1 when one is below
  report NAME --wandb [--entity E --project P]   the same multirun as a W&B report of its wandb group
  report SEARCH_DIR                   a search's trials, pruned/failed counts, best trial as a train command, plots
  prepare dataset=NAME [overrides...]  check the files, convert/integrate/cache once (before a sweep)
  bench neuron [--quick] [--device cuda] [--backends torch,cupy,...]
                                      neuron backends on [T, N] (the survey's speed grid): CSV, PNG, table
  bench report [--quick]               every benchmark -> bench/*.csv + BENCHMARKS.md
  bench stdp [--quick]                 bp_stdp's STDP update: spikingjelly's learner vs. the batched one
  bench status [--jobs N]             `status` and the `--resume` plan on a synthetic N-job sweep (target: < 1 s)
  bench dispatch [--points N]          compose a N-point sweep; with $SLURM_CONF, also submit it as an array
  bench data dataset=NAME [overrides...] [--batches N]   loader samples/s vs the train step's
  bench model model=X dataset=Y [--steps N] [trainer.batch_size=B trainer.compile=true trainer.amp=bf16 ...]
                                      train-step samples/s, memory and neuron/conv time split vs. spikingjelly's eager LIFNode
  bench coco [--images N] [--detections N]   task=detection's COCO evaluator vs. faster-coco-eval (same mAP)
  bench compile [--sizes N,N]         a neuron loop eager vs. compiled, its compile time, the calls that repay it
  doctor [--surrogate NAME] [--backends torch,compile,...] [--shape 4,8,128,16,16]
                                      every neuron backend here: verified / failed / unavailable, and its speed
  info model=X dataset=Y [overrides...]   params, FLOPs, SOPs and energy at init, memory per sample
  verify-spikes CKPT [--batches N]    a trained model's logits with integer spikes vs. each integer k sent
                                      as k binary spikes over sub-steps (SDT v3's claim); exit 1 on mismatch
  export RUN --to nir|fpga [--bits W] [--samples N] [-o OUT]
                                      the trained network as a NIR graph, or a fixed-point FPGA package
                                      (manifest, .mem/.coe memories, params.vh, golden traces)
  import-ckpt --from spikingformer|sdtv3 PATH dataset=NAME [model=NAME] [overrides...] [-o OUT]
                                      an upstream checkpoint as ours, for `train trainer.eval_only=true ckpt=OUT`
"""

#: command -> (module of spikesweep.cli, function): a command imports only its own module
COMMANDS = {
    "train": ("train", "cmd_train"),
    "sweep": ("sweep", "cmd_sweep"),
    "list": ("sweep", "cmd_list"),
    "search": ("search", "cmd_search"),
    "status": ("status", "cmd_status"),
    "compare": ("report", "cmd_compare"),
    "report": ("report", "cmd_report"),
    "prepare": ("prepare", "cmd_prepare"),
    "bench": ("bench", "cmd_bench"),
    "info": ("info", "cmd_info"),
    "verify-spikes": ("info", "cmd_verify_spikes"),
    "export": ("export", "cmd_export"),
    "import-ckpt": ("import_ckpt", "cmd_import_ckpt"),
    "doctor": ("doctor", "cmd_doctor"),
}


def _user_error(err: Exception) -> bool:
    """A mistake in what the user gave (argument, config value, file), not a bug: one line is enough.
    Config errors are ValueErrors; Hydra's own are checked only when Hydra was loaded."""
    hydra_errors = sys.modules.get("hydra.errors")
    if hydra_errors is not None and isinstance(err, hydra_errors.HydraException):
        return True
    return isinstance(err, UserError | ValueError | FileNotFoundError | NotADirectoryError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command '{command}'; valid: {', '.join(COMMANDS)}\n\n{USAGE}", file=sys.stderr)
        return 2
    module, function = COMMANDS[command]
    run = getattr(importlib.import_module(f"spikesweep.cli.{module}"), function)
    try:
        return run(rest)
    except Exception as err:
        if not _user_error(err):
            raise
        print(f"error: {str(err).splitlines()[0] if str(err) else type(err).__name__}", file=sys.stderr)
        return 2
