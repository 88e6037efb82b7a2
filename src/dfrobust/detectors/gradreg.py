"""Plain baselines of the gradient-regularisation paper (Guan et al., "Improving
generalization of deepfake detectors by imposing gradient regularization",
IEEE TIFS 2024): a timm backbone with a 2-class head and cross-entropy, and
the training settings the paper gives every backbone it compares
(EfficientNet-B4, ConvNeXt-base, ResNet-50; Xception takes them as a model
row's `settings`, config/protocols/gradreg.yaml). Each backbone is its own
module (efficientnet_b4.py, convnext_base.py, resnet50.py) stating only its
network and input size; the settings they share are written once, here.

Paper settings: ImageNet initialisation; SGD (Algorithm 1, step 9); up to 100
epochs (here: 100, the epoch with the best validation AUC is kept); 8 frames
per training video; batch 64; no data augmentation (Sec. V-A-3). The paper's
PIM regulariser is a training procedure (dfrobust.training.procedures.pim),
not part of these classes.

Where the paper is silent, SBI's code (Shiohara & Yamasaki, CVPR 2022,
mapooon/SelfBlendedImages: src/model.py, src/utils/scheduler.py,
src/configs/sbi/base.json), whose other constants the paper shares (100
epochs, 8 frames per video, r' = 0.05 = SBI's SAM rho) and whose data the
paper's best model trains on: SGD lr 1e-3, momentum 0.9, no weight decay, the
learning rate constant for the first 75 epochs and then linearly down towards
zero (SBI's LinearDecayLR). Also ours, not the paper's: class-balanced batches,
32 validation frames per video, no dropout. Adam stays a setting
(`optimizer: {name: adam, lr: 1.0e-4}`, `lr_schedule: {name: constant}`: this
module's defaults before the paper's SGD was adopted).

The optional augmentation of the paper's Table IV (HorizontalFlip, RGBShift,
HueSaturationValue, RandomBrightnessContrast, ImageCompression, GaussNoise) is
an `augment` list of albumentations transforms, set in a model row's
`settings` (config/protocols/gradreg.yaml, &paper_augment), off by default.
"""

from __future__ import annotations

from dfrobust.detectors.base import TimmClassifier

#: the paper's optimiser (SGD, Algorithm 1 step 9) with SBI's code's values where the paper is silent
PAPER_OPTIMIZER = {"name": "sgd", "lr": 1.0e-3, "momentum": 0.9, "weight_decay": 0.0}
#: SBI's LinearDecayLR(optimizer, n_epoch, int(n_epoch / 4 * 3)) (the paper gives no schedule)
PAPER_SCHEDULE = {"name": "linear_decay", "decay_start": 0.75}


class GradRegBaseline(TimmClassifier):
    """A timm backbone with a 2-class head and cross-entropy, trained with the gradient-regularisation paper's settings."""

    defaults = {
        "optimizer": PAPER_OPTIMIZER,
        "lr_schedule": PAPER_SCHEDULE,
        "epochs": 100,
        "batch_size": 64,
        "frames_per_video": 8,
    }
