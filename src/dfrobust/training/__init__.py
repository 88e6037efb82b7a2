"""Training library: one detector on face shards, checkpoint selection on the
validation split, resumable.

    from dfrobust.training import train
"""

from dfrobust.training.loop import evaluate, train, train_step
from dfrobust.training.procedures import TrainingDiverged
from dfrobust.training.sam import SAM

__all__ = ["SAM", "TrainingDiverged", "evaluate", "train", "train_step"]
