"""The predictive-coding core: energies, value nodes and the energy graph. No Hugging Face imports here."""

from .energies import IGNORE_INDEX, cross_entropy, gaussian, softmax_kl
from .graph import EnergyFn, EnergyGraph, FeedForward

__all__ = ["IGNORE_INDEX", "cross_entropy", "gaussian", "softmax_kl", "EnergyFn", "EnergyGraph", "FeedForward"]
