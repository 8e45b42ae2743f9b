"""The predictive-coding core: energies, value nodes and the energy graph. No Hugging Face imports here."""

from .energies import IGNORE_INDEX, cross_entropy, gaussian, softmax_kl
from .graph import EnergyFn, EnergyGraph, FeedForward
from .linear_ce import linear_cross_entropy

__all__ = [
    "IGNORE_INDEX",
    "cross_entropy",
    "gaussian",
    "softmax_kl",
    "EnergyFn",
    "EnergyGraph",
    "FeedForward",
    "linear_cross_entropy",
]
