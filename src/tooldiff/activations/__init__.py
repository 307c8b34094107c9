"""Paired activation harvest (both models, same tokens, layer L) and its on-disk store."""

from tooldiff.activations.batches import BatchStream, iter_batches, split_rows
from tooldiff.activations.harvest import harvest_pair
from tooldiff.activations.manifest import Manifest
from tooldiff.activations.store import ActivationStore, load_activations

__all__ = ["ActivationStore", "BatchStream", "Manifest", "harvest_pair", "iter_batches", "load_activations",
           "split_rows"]
