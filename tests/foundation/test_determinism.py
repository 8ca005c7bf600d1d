"""Issue 19 item 8: the same seed and config give the same energy, SOPs and firing rates, every epoch."""

import json

from tests.foundation.test_train import _train

MEASURES = ("firing", "energy", "sops")


def _measures(run_dir) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [*lines, summary["final"]]
    return [{k: v for k, v in row.items() if any(m in k for m in MEASURES)} for row in rows]


def test_same_seed_and_config_give_identical_energy_sops_and_firing_rates(tmp_path):
    for name in ("a", "b"):
        _train(tmp_path / name, "trainer.epochs=2", "seed=7")
    first, second = _measures(tmp_path / "a"), _measures(tmp_path / "b")
    assert all(k in first[0] for k in ("firing_rate", "energy_mj", "sops_g")), first[0]
    assert first[0]["energy_mj"] > 0 and 0 < first[0]["firing_rate"] < 1
    assert first == second  # exactly: no tolerance
