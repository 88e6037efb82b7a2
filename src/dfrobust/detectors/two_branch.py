"""Two-branch recurrent network (Masi et al., "Two-branch Recurrent Network
for Isolating Deepfakes in Videos", ECCV 2020): the sequence detector.

Per face: a DenseNet-121 stem (timm `densenet121`) feeds two branches, RGB
(the first dense block) and Deep LoG (deep_log.MultiScaleLoG on the stem's
maps, S = 3 scales, fixed Gaussian, 1x1 conv to the first block's width);
the two aligned maps are concatenated and fused by a point-wise convolution
with 2 groups (each group projects one branch to half the channels; the
next dense block mixes them); then the three downstream DenseNet blocks with
dropout 0.2 after each dense layer, and global average pooling to 1024. A
bidirectional LSTM (hidden 128) runs over the window's F faces; the last
hidden states of both directions, concatenated, are the window's embedding
Phi (D = 256). `lstm: false` trains frame by frame (the paper's ablation):
every face is its own sample with its 1024-d embedding, and a window's score
is the mean of its faces' scores.

Loss (hypersphere): the centre c is the mean embedding of every real
training window under the initial network (eval mode, computed once before
the first epoch by `prepare`, kept as a buffer in checkpoints and weights);
L = mean over real windows of max(0, |Phi - c| - r_minus) + mean over fake
windows of max(0, r_plus - |Phi - c|). The score of a window is
d / (d + m) with d = |Phi - c| and m = (r_minus + r_plus) / 2: monotonic in
d (AUCs are those of d), in [0, 1), 0.5 halfway between the margins, and it
does not saturate in float32 the way a sigmoid would (no ties among far
fakes). A video's score is the mean over its windows (the metrics' rule).

Training data: windows stored by the face stage (faces.windows); each epoch
takes one random window of every training video, reals over-sampled to as
many draws as fakes. Optimiser: Adam lr mu = 1e-3, weight decay 1e-6; the
LoG block, the fusion and the LSTM learn at mu, the DenseNet blocks at
mu / 2^L (`block_lr`); lr / 10 when the validation loss stalls, 3 times at most.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from dfrobust.core.errors import InputError
from dfrobust.detectors.augment import Augmenter
from dfrobust.detectors.base import Detector, load_weights_file
from dfrobust.detectors.data import FaceData
from dfrobust.detectors.deep_log import MultiScaleLoG
from dfrobust.detectors.registry import register
from dfrobust.detectors.tensors import pick_frames, resize_crops, to_tensor
from dfrobust.media.windows import window_count, windows_of


def pool_windows(pool, length: int) -> list[np.ndarray]:
    """Per video of a pool: its windows as an (n, length) array of pool rows.

    A sequence detector's pool keeps whole windows only (WindowData.pool_rows), each
    video's rows contiguous and in time order, so a window never crosses videos.
    """
    if length <= 0:
        raise ValueError("window length must be positive")
    video_index = np.asarray(pool.video_index)
    starts = np.flatnonzero(np.r_[True, video_index[1:] != video_index[:-1]])
    out = []
    for rows in np.split(np.arange(len(video_index)), starts[1:]):
        if len(rows) % length:
            raise ValueError(f"a video has {len(rows)} faces in the pool, not whole windows of {length}")
        out.append(rows.reshape(-1, length))
    return out


def _window_tensor(crops: np.ndarray, augment: Augmenter | None = None, seed: int = 0) -> torch.Tensor:
    """(F, S, S, 3) uint8 -> (1, F, 3, S, S); one augmentation draw for the whole window."""
    if augment:
        crops = np.stack([augment(c, seed) for c in crops])
    return to_tensor(crops)[None]


class WindowEpoch(Dataset):
    """One training epoch: one random window of every video, the smaller class
    over-sampled (fresh permutations, then a random part of one) to as many
    draws as the larger, in a seeded shuffled order. Items are (1, F, 3, S, S)."""

    images_per_item = 1

    def __init__(self, pool, length: int, seed: int, balanced: bool = True, augment: Augmenter | None = None):
        self.pool, self.seed, self.augment = pool, seed, augment
        self.windows = pool_windows(pool, length)
        self.labels = np.array([v["label"] for v in pool.videos], np.int64)
        rng = np.random.default_rng(seed)
        classes = np.unique(self.labels)
        videos = np.arange(len(self.labels))
        if balanced and len(classes) > 1:
            n = max(int((self.labels == c).sum()) for c in classes)
            draws = []
            for c in classes:
                members = np.flatnonzero(self.labels == c)
                draws.append(np.concatenate([rng.permutation(members) for _ in range(-(-n // len(members)))])[:n])
            videos = np.concatenate(draws)
        self.videos = rng.permutation(videos)
        self.choice = np.array([rng.integers(len(self.windows[v])) for v in self.videos], np.int64)

    def __len__(self) -> int:
        return len(self.videos)

    def rows(self, i: int) -> np.ndarray:
        return self.windows[self.videos[i]][self.choice[i]]

    def __getitem__(self, i: int):
        seed = np.random.SeedSequence([self.seed, i]).generate_state(1)[0]
        return (_window_tensor(self.pool.crops[self.rows(i)], self.augment, seed),
                torch.tensor([int(self.labels[self.videos[i]])]))


class PoolWindows(Dataset):
    """Every window of a pool once, in order (validation, the centre)."""

    images_per_item = 1

    def __init__(self, pool, length: int, labels: tuple[int, ...] = (0, 1)):
        self.pool = pool
        self.items = [(int(pool.videos[v]["label"]), rows) for v, windows in enumerate(pool_windows(pool, length))
                      if int(pool.videos[v]["label"]) in labels for rows in windows]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        label, rows = self.items[i]
        return _window_tensor(self.pool.crops[rows]), torch.tensor([label])


class WindowData(FaceData):
    """The two-branch network's data: windows of F consecutive faces stored by the face
    stage (faces.windows), one random window of every training video per epoch."""

    def __init__(self, cfg: dict[str, Any], name: str):
        super().__init__(cfg, name)
        self.window_length = 0  # F of the face shards, set when the pools are built

    def _window_length(self, length: int, where: str) -> int:
        if length <= 0:
            raise InputError(f"{where}: holds single frames; detector {self.name} needs windows "
                             f"(set faces.windows.length, the paper: 10)")
        if self.window_length and length != self.window_length:
            raise InputError(f"{where}: windows of {length} frames, other shards of this run have {self.window_length}")
        self.window_length = length
        return length

    def pool_rows(self, record, window_length: int, k: int) -> np.ndarray:
        """Rows of ceil(k / F) complete windows spread over the video's (none: the video is left out)."""
        length = self._window_length(window_length, f"faces of {record.video_id}")
        complete = [w.rows for w in windows_of(record, length) if len(w.rows) == length]
        if not complete:
            return np.zeros(0, np.int64)
        return np.concatenate([complete[i] for i in pick_frames(len(complete), window_count(k, length))])

    def train_dataset(self, pool, seed: int) -> Dataset:
        return WindowEpoch(pool, self.window_length, seed, balanced=bool(self.cfg["balanced"]), augment=self.augmenter())

    def val_dataset(self, pool, seed: int) -> Dataset:
        return PoolWindows(pool, self.window_length)

    def _window_batches(self, items: list, crops_of, batch: int):
        """(start, uint8 (B, F, 3, S, S)) over `items` of equally long windows; crops_of(item) -> (F, S', S', 3)."""
        for start in range(0, len(items), batch):
            windows = [crops_of(item) for item in items[start : start + batch]]
            crops = resize_crops(np.concatenate(windows), self.input_size)
            yield start, to_tensor(crops).view(len(windows), len(windows[0]), 3, self.input_size, self.input_size)

    @torch.no_grad()
    def prepare(self, detector, train_pool) -> None:
        """The centre c: mean embedding of every real training window, initial network, eval mode."""
        data = PoolWindows(train_pool, self.window_length, labels=(0,))
        if not len(data):
            raise InputError(f"detectors.{self.name}: no real training window to place the hypersphere centre on")
        was_training = detector.training
        detector.eval()
        total, count = torch.zeros(detector.embedding_size, dtype=torch.float64), 0
        rows = [r for _, r in data.items]
        for _, x in self._window_batches(rows, lambda r: train_pool.crops[r], int(self.cfg["batch_size"])):
            emb = detector(detector.preprocess(x)).reshape(-1, detector.embedding_size)
            total += emb.double().sum(dim=0).cpu()
            count += len(emb)
        detector.center.copy_((total / count).to(detector.center))
        detector.train(was_training)

    def score_records(self, detector, records: list, window_length: int, batch_size: int,
                      log=print) -> list[tuple[np.ndarray, np.ndarray]]:
        """One row per window with a face: frame_index = the window's first frame.

        A window with fewer faces than F (a video shorter than one window, or
        frames without a face) is scored on the faces it has (the LSTM takes
        any length) and counted in the log; a window without a face is not
        scored (counted too).
        """
        length = window_length
        if length <= 0:
            raise InputError(f"detector {self.name} scores windows, but these test faces hold single frames "
                             f"(set faces.windows.length, the paper: 10)")
        wins = [windows_of(r, length) for r in records]
        full = [(i, k) for i, ws in enumerate(wins) for k, w in enumerate(ws) if len(w.rows) == length]
        short = [(i, k) for i, ws in enumerate(wins) for k, w in enumerate(ws) if 0 < len(w.rows) < length]
        empty = sum(len(w.rows) == 0 for ws in wins for w in ws)
        scores: dict[tuple[int, int], float] = {}

        faces = [self.view_faces(r) if r.n_faces else r.crops for r in records]  # cut as in training (the detector's crop)

        def crops_of(key):
            return faces[key[0]][wins[key[0]][key[1]].rows]

        was_training = detector.training
        detector.eval()
        try:
            with torch.inference_mode():
                for keys, batch in [(full, max(1, batch_size // length))] + [([key], 1) for key in short]:
                    for start, x in self._window_batches(keys, crops_of, batch):
                        out = detector.predict_proba(detector.preprocess(x)).float().cpu().numpy()
                        scores.update(zip(keys[start : start + batch], out.tolist()))
        finally:
            detector.train(was_training)
        if short or empty:
            log(f"{self.name}: {len(short)} window(s) with fewer than {length} faces (a video shorter than one window, "
                f"or frames without a face) scored on the faces they have; {empty} window(s) without a face not scored")
        out = []
        for i, ws in enumerate(wins):
            keys = [(i, k) for k in range(len(ws)) if (i, k) in scores]
            out.append((np.array([ws[k].first_frame for _, k in keys], np.int64),
                        np.array([scores[key] for key in keys], np.float32)))
        return out


@register("two_branch")
class TwoBranch(Detector):
    """Two-branch recurrent network (Masi et al.): DenseNet-121 with an RGB and a multi-scale LoG branch, BiLSTM over windows of faces, hypersphere loss."""

    defaults = {
        "backbone": "densenet121",
        "optimizer": {"name": "adam", "lr": 1.0e-3, "weight_decay": 1.0e-6},
        "lr_schedule": {"name": "plateau", "factor": 0.1, "patience": 1, "max_reductions": 3},
        "epochs": 30,
        "batch_size": 8,
        "frames_per_video": 100,
        "val_frames_per_video": 32,
        "log_scales": 3,
        "log_sigma": 1.0,
        "dense_dropout": 0.2,
        "lstm": True,
        "lstm_hidden": 128,
        "r_minus": 0.5,
        "r_plus": 2.0,
        "block_lr": "output",
    }
    settings = {
        "backbone": {"type": "string", "enum": ["densenet121", "densenet169", "densenet201", "densenet161"],
                     "description": "A timm DenseNet (the paper: densenet121)."},
        "batch_size": {"type": "integer", "minimum": 2, "description": "Windows per training step."},
        "frames_per_video": {"type": "integer", "minimum": 1,
                             "description": "Faces per training video, in whole windows: ceil(k / F) complete windows "
                                            "spread over those the face stage stored (F = faces.windows.length)."},
        "val_frames_per_video": {"type": "integer", "minimum": 1,
                                 "description": "Faces per validation video, in whole windows (as frames_per_video)."},
        "log_scales": {"type": "integer", "minimum": 1, "description": "Scales S of the Deep LoG branch."},
        "log_sigma": {"type": "number", "exclusiveMinimum": 0,
                      "description": "Sigma of the fixed Gaussian of the LoG branch (pixels of the stem's maps; 5 taps at 1)."},
        "dense_dropout": {"type": "number", "minimum": 0, "maximum": 1,
                          "description": "Dropout after each dense layer of the three downstream DenseNet blocks."},
        "lstm": {"type": "boolean",
                 "description": "Bidirectional LSTM over each window; false: frame by frame (1024-d embeddings, "
                                "a window's score the mean of its faces')."},
        "lstm_hidden": {"type": "integer", "minimum": 1, "description": "LSTM hidden size per direction (D = 2 x this)."},
        "r_minus": {"type": "number", "minimum": 0,
                    "description": "Hypersphere loss: reals are pulled inside this distance from the centre."},
        "r_plus": {"type": "number", "exclusiveMinimum": 0,
                   "description": "Hypersphere loss: fakes are pushed beyond this distance (> r_minus)."},
        "block_lr": {"type": "string", "enum": ["output", "input", "same"],
                     "description": "DenseNet block k learns at lr / 2^L: output - L counted from the last block "
                                    "(L = 1) down to the stem and first block (L = 4); input - the other way; "
                                    "same - all at lr. The LoG branch, fusion and LSTM learn at lr."},
    }

    data_class = WindowData

    def __init__(self, cfg: dict[str, Any]):
        super().__init__(cfg)
        import timm

        if not float(cfg["r_minus"]) < float(cfg["r_plus"]):
            raise InputError(f"config key 'detectors.{self.name}': r_minus ({cfg['r_minus']}) must be below r_plus ({cfg['r_plus']})")
        pretrained = cfg["pretrained"]
        self.densenet = timm.create_model(cfg["backbone"], pretrained=pretrained is True, num_classes=0,
                                          proj_drop_rate=float(cfg["dense_dropout"]))
        if isinstance(pretrained, str):
            self.weights_report = load_weights_file(self.densenet, pretrained, f"detectors.{self.name}.pretrained")
        f = self.densenet.features
        for layer in f.denseblock1.values():
            layer.drop_rate = 0.0  # dropout only in the three downstream blocks
        stem, width = f.norm0.num_features, f.transition1.conv.in_channels
        self.log = MultiScaleLoG(stem, width, int(cfg["log_scales"]), float(cfg["log_sigma"]))
        self.fusion = nn.Conv2d(2 * width, width, kernel_size=1, groups=2, bias=False)
        hidden = int(cfg["lstm_hidden"])
        self.lstm = nn.LSTM(self.densenet.num_features, hidden, batch_first=True, bidirectional=True) if cfg["lstm"] else None
        self.embedding_size = 2 * hidden if cfg["lstm"] else self.densenet.num_features
        self.register_buffer("center", torch.zeros(self.embedding_size))
        self.r_minus, self.r_plus = float(cfg["r_minus"]), float(cfg["r_plus"])

    # -- model -------------------------------------------------------------
    def frame_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised faces -> (N, 1024)."""
        f = self.densenet.features
        stem = f.pool0(f.norm0(f.conv0(x)))
        x = self.fusion(torch.cat([f.denseblock1(stem), self.log(stem)], dim=1))
        for name in ("transition1", "denseblock2", "transition2", "denseblock3", "transition3", "denseblock4", "norm5"):
            x = getattr(f, name)(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Windows (B, F, 3, H, W) (a 4-D batch: windows of one face) -> embeddings
        (B, D) with the LSTM, (B, F, 1024) without."""
        if x.dim() == 4:
            x = x[:, None]
        b, f = x.shape[:2]
        frames = self.frame_embeddings(x.flatten(0, 1)).view(b, f, -1)
        if self.lstm is None:
            return frames
        _, (h, _) = self.lstm(frames)
        return torch.cat([h[0], h[1]], dim=1)

    def distance(self, output: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(output - self.center, dim=-1)

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d = self.distance(output)
        y = labels.view(-1, *([1] * (d.dim() - 1))).expand_as(d)
        real, fake = d[y == 0], d[y == 1]
        loss = d.new_zeros(())
        if real.numel():
            loss = loss + F.relu(real - self.r_minus).mean()
        if fake.numel():
            loss = loss + F.relu(self.r_plus - fake).mean()
        return loss

    def proba(self, output: torch.Tensor) -> torch.Tensor:
        d = self.distance(output)
        score = d / (d + (self.r_minus + self.r_plus) / 2)
        return score.mean(dim=1) if score.dim() == 2 else score

    def trainable_parameters(self) -> list[dict]:
        """Param groups: the new layers at lr first (the logged lr), then each DenseNet block at lr / 2^L."""
        lr = float(self.cfg["optimizer"]["lr"])
        f = self.densenet.features
        blocks = [[f.conv0, f.norm0, f.denseblock1], [f.transition1, f.denseblock2], [f.transition2, f.denseblock3],
                  [f.transition3, f.denseblock4, f.norm5]]
        depth = {"output": [4, 3, 2, 1], "input": [1, 2, 3, 4], "same": [0, 0, 0, 0]}[self.cfg["block_lr"]]
        new = [self.log, self.fusion] + ([self.lstm] if self.lstm is not None else [])
        groups = [{"params": [p for m in new for p in m.parameters() if p.requires_grad], "lr": lr}]
        for modules, level in zip(blocks, depth):
            groups.append({"params": [p for m in modules for p in m.parameters() if p.requires_grad], "lr": lr / 2**level})
        return groups
