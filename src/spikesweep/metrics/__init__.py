"""Accuracy and spiking-activity measurements."""

from spikesweep.metrics.accuracy import topk_correct
from spikesweep.metrics.firing import FiringRateMonitor

__all__ = ["FiringRateMonitor", "topk_correct"]
