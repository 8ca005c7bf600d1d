"""Plot every surrogate's primitive and gradient: `python -m spikesweep.spiking.plot docs/surrogates.png`."""

import sys
from pathlib import Path

import torch

from spikesweep.spiking.surrogate import build_surrogate, surrogate_names


def plot_surrogates(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = surrogate_names()
    fig, axes = plt.subplots(3, (len(names) + 2) // 3, figsize=(16, 9), squeeze=False)
    for ax, name in zip(axes.flat, names):
        s = build_surrogate({"name": name})
        integer = getattr(s, "integer", False)
        x = torch.linspace(-1.0, 5.0 if integer else 2.0, 1201, requires_grad=True)
        out = s(x)
        (grad,) = torch.autograd.grad(out.sum(), x)
        ax.plot(x.detach(), out.detach(), label="forward")
        ax.plot(x.detach(), grad, label="surrogate gradient")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    plot_surrogates(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/surrogates.png"))
