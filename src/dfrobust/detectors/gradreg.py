"""Plain baselines of the gradient-regularisation paper (Guan et al., "Improving
generalization of deepfake detectors by imposing gradient regularization",
IEEE TIFS 2024): a timm backbone with a 2-class head and cross-entropy, and
the training settings the paper gives every backbone it compares
(EfficientNet-B4, ConvNeXt-base, ResNet-50; Xception takes them as a model
row's `settings`). Each backbone is its own module (efficientnet_b4.py,
convnext_base.py, resnet50.py) stating only its network and input size; the
settings they share are written once, here.

Paper settings: ImageNet initialisation, up to 100 epochs (here: 100, the
epoch with the best validation AUC is kept), 8 frames per training video,
batch 64. The paper's PIM regulariser is a training procedure
(dfrobust.training.procedures.pim), not part of these classes.

Where the paper is silent (or its text was not at hand when this was
written; see the README's protocol table): Adam (0.9, 0.999), lr 1e-4,
no weight decay, constant schedule; class-balanced batches; 32 validation
frames per video; no dropout.

The paper's optional augmentation (HorizontalFlip, RGBShift,
HueSaturationValue, RandomBrightnessContrast, ImageCompression, GaussNoise)
is an `augment` list of albumentations transforms, switched on with one edit
of a detector block or a model row's `settings`; the list, with its
arguments, is in the backbone-comparison protocol config
(config/protocols/gradreg.yaml). The paper names the transforms only: their
arguments are SBI's code's where SBI has the transform, albumentations 1.x's
defaults for HorizontalFlip and GaussNoise (variance 10..50 on 0..255).
"""

from __future__ import annotations

from dfrobust.detectors.base import TimmClassifier


class GradRegBaseline(TimmClassifier):
    """A timm backbone with a 2-class head and cross-entropy, trained with the gradient-regularisation paper's settings."""

    defaults = {
        "optimizer": {"name": "adam", "lr": 1.0e-4, "betas": [0.9, 0.999], "weight_decay": 0.0},
        "lr_schedule": {"name": "constant"},
        "epochs": 100,
        "batch_size": 64,
        "frames_per_video": 8,
    }
