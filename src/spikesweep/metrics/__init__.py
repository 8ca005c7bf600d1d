"""Accuracy and spiking-activity measurements (firing rates, synaptic operations, energy)."""

from spikesweep.metrics.accuracy import topk_correct
from spikesweep.metrics.energy import EnergyMonitor

__all__ = ["EnergyMonitor", "topk_correct"]
