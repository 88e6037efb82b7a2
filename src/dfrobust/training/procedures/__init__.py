"""Training procedures: what one training step does with a batch.

`plain` is the detector's own loss through its optimiser (SAM included).
Regularisers and adversarial games (PIM, blurring adversarial training, ...)
are procedures too: each is one module here with a `@register`-ed class, its
`defaults` and the schema of its settings; a model row selects one
(`procedure: pim`), and the `procedures` config block is generated from the
classes, as the `detectors` block is.
"""

import importlib
import pkgutil

from dfrobust.training.procedures.base import PROCEDURES, Procedure, TrainingDiverged, build_procedure

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

config_schema = PROCEDURES.schema

__all__ = ["PROCEDURES", "Procedure", "TrainingDiverged", "build_procedure", "config_schema"]
