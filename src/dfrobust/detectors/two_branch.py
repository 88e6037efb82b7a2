"""Two-branch recurrent network (Masi et al., "Two-branch Recurrent Network
for Isolating Deepfakes in Videos", ECCV 2020): the sequence detector.

Per face (input 224 px): a DenseNet-121 stem (timm `densenet121`, 56x56x64)
feeds two branches that each end at 28x28x128:

    Phi_RGB  the first dense block and transition          (56x56x256 -> 28x28x128)
    Phi_LoG  the multi-scale LoG on the stem's maps (deep_log.MultiScaleLoG, 64 -> 64
             channels), then its own dense block and transition, copies of the RGB
             branch's (initialised from the same ImageNet weights)

The two maps are concatenated (28x28x256) and fused by a point-wise
convolution with 2 groups (each group maps one branch's 128 channels to 64;
`fusion_groups: 1` mixes them), BatchNorm, ReLU and dropout; the three
downstream DenseNet blocks follow, with global average pooling to 1024.
Dropout 0.2 sits after every dense layer, the first block and its LoG copy
included (`dense_dropout`). A bidirectional LSTM (hidden 128) runs over the
window's F faces; the last hidden states of both directions, concatenated
(`lstm_combine: sum` adds them), are the window's embedding Phi (D = 256).
`lstm: false` trains frame by frame (the paper's ablation): every face is
its own sample with its 1024-d embedding. `log_branch: false` is the single
(RGB) branch network of the paper's ablation.

Loss (`loss: hypersphere`, Eq. 2): the centre c is the mean embedding of
every real training window under the initial network (eval mode, computed
once before the first epoch by `prepare`, kept as a buffer in checkpoints
and weights); L = mean over real windows of max(0, |Phi - c| - r_minus) +
mean over fake windows of max(0, r_plus - |Phi - c|). Radii: 0.042 / 1.638
with the LSTM (D = 256), 2.5 / 97.5 without (D = 1024); the pairs are
R (1 -+ 0.95) with R = 0.84 and R = 50. `loss: ce` is the plain encoder of
the paper's ablation: a linear 2-way head on Phi and cross-entropy.

Scores: a window's value is its distance d = |Phi - c| (without the LSTM,
each face has its own); its score is d / (d + R), R = (r_minus + r_plus) / 2:
monotonic in d (AUCs are those of d), 0.5 at R (the accuracy threshold, as
the hypersphere's decision d >= R), no float32 saturation among far fakes.
A video's score is g(mean of its windows' distances), written in every row
of its score table (`video_score`), not the mean of the rows' scores (which
can reorder videos: windows d = [0, 10] against [3, 3]). The score table has
one row per face: each frame of a window carries its window's score (frame
metrics count frames). With `loss: ce` the value is the fake probability.

Training data: windows stored by the face stage (faces.windows). A
stratified epoch draws `real_windows` (2) random windows of every real
training video, and as many fake windows, shared equally by the trained
manipulations, each drawing its videos without replacement from fresh
permutations: on FF++ (720 real, 4 x 720 fake training videos) every real
video twice and a random half of each manipulation's, 2880 windows.
Optimiser: Adam lr mu = 1e-3, weight decay 1e-6; the LoG branch (its dense
block copy included), the fusion, the LSTM (and the CE head) learn at mu, the
DenseNet blocks at mu / 2^L (`block_lr`); lr / 10 after 50 stratified epochs
without a lower validation loss, 3 times at most; 204 stratified epochs
(4 x 51: three plateaus ending in a reduction and a fourth at the last lr).
"""

from __future__ import annotations

import copy
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

#: the paper's radii (r_minus, r_plus) by mode: with the LSTM (2D = 256) and frame by frame (D = 1024)
RADII = {True: (0.042, 1.638), False: (2.5, 97.5)}


def radii(cfg: dict[str, Any]) -> tuple[float, float]:
    """(r_minus, r_plus): the config's, or where null the paper's for the mode (`lstm`)."""
    default = RADII[bool(cfg["lstm"])]
    return (float(default[0] if cfg["r_minus"] is None else cfg["r_minus"]),
            float(default[1] if cfg["r_plus"] is None else cfg["r_plus"]))


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


def _draws(rng: np.random.Generator, members: np.ndarray, n: int) -> np.ndarray:
    """n draws from `members` without replacement, cycling through fresh permutations."""
    if n <= 0 or not len(members):
        return np.zeros(0, np.int64)
    return np.concatenate([rng.permutation(members) for _ in range(-(-n // len(members)))])[:n]


class WindowEpoch(Dataset):
    """One stratified training epoch of windows, in a seeded shuffled order.

    balanced: every real video `real_windows` times, and as many fake draws,
    shared equally by the manipulations present (the first ones get one more
    when they do not divide), each drawing its videos without replacement
    from fresh permutations; every draw is a random window of its video.
    With both classes FF++'s four manipulations give the paper's rule, reals
    x2 and each manipulation /2. Not balanced (or one class only): every
    video once. Items are (1, F, 3, S, S).
    """

    images_per_item = 1

    def __init__(self, pool, length: int, seed: int, balanced: bool = True, real_windows: int = 2,
                 augment: Augmenter | None = None):
        self.pool, self.seed, self.augment = pool, seed, augment
        self.windows = pool_windows(pool, length)
        self.labels = np.array([v["label"] for v in pool.videos], np.int64)
        manipulations = np.array([v["manipulation"] for v in pool.videos])
        rng = np.random.default_rng(seed)
        videos = np.arange(len(self.labels))
        reals, fakes = videos[self.labels == 0], videos[self.labels == 1]
        if balanced and len(reals) and len(fakes):
            real_draws = np.repeat(reals, int(real_windows))
            names = sorted(set(manipulations[fakes]))
            share, extra = divmod(len(real_draws), len(names))
            fake_draws = [_draws(rng, fakes[manipulations[fakes] == name], share + (i < extra))
                          for i, name in enumerate(names)]
            videos = np.concatenate([real_draws, *fake_draws])
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
    stage (faces.windows), stratified epochs of random windows."""

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
        return WindowEpoch(pool, self.window_length, seed, balanced=bool(self.cfg["balanced"]),
                           real_windows=int(self.cfg["real_windows"]), augment=self.augmenter())

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
        """The centre c: mean embedding of every real training window, initial network, eval mode
        (the hypersphere loss only; the cross-entropy head needs none)."""
        if not detector.hypersphere:
            return
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
                      log=print) -> list[tuple[np.ndarray, np.ndarray, dict]]:
        """One row per face of every scored window, frame_index = its frame: each face carries its
        window's score (without the LSTM, its own), and every row of a video the video's score
        (columns `window`: the window's number in the video, `video_score`: g(mean of the
        windows' values), see TwoBranch.video_score).

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
        values: dict[tuple[int, int], np.ndarray] = {}  # per window: its value per face (F,)

        faces = [self.view_faces(r) if r.n_faces else r.crops for r in records]  # cut as in training (the detector's crop)

        def crops_of(key):
            return faces[key[0]][wins[key[0]][key[1]].rows]

        was_training = detector.training
        detector.eval()
        try:
            with torch.inference_mode():
                for keys, batch in [(full, max(1, batch_size // length))] + [([key], 1) for key in short]:
                    for start, x in self._window_batches(keys, crops_of, batch):
                        out = detector.face_values(detector(detector.preprocess(x)), x.shape[1]).double().cpu().numpy()
                        values.update(zip(keys[start : start + batch], out))
        finally:
            detector.train(was_training)
        if short or empty:
            log(f"{self.name}: {len(short)} window(s) with fewer than {length} faces (a video shorter than one window, "
                f"or frames without a face) scored on the faces they have; {empty} window(s) without a face not scored")
        out = []
        for i, ws in enumerate(wins):
            keys = [(i, k) for k in range(len(ws)) if (i, k) in values]
            if not keys:
                out.append((np.zeros(0, np.int64), np.zeros(0, np.float32), {"window": np.zeros(0, np.int64),
                                                                              "video_score": np.zeros(0, np.float32)}))
                continue
            face_values = np.concatenate([values[key] for key in keys])
            video = detector.video_score([values[key] for key in keys])
            out.append((np.concatenate([records[i].frame_indices[ws[k].rows] for _, k in keys]).astype(np.int64),
                        detector.score_of(face_values).astype(np.float32),
                        {"window": np.concatenate([np.full(len(ws[k].rows), k, np.int64) for _, k in keys]),
                         "video_score": np.full(len(face_values), video, np.float32)}))
        return out


@register("two_branch")
class TwoBranch(Detector):
    """Two-branch recurrent network (Masi et al.): DenseNet-121 with an RGB and a Deep LoG branch (each its own first dense block), BiLSTM over windows of faces, hypersphere loss."""

    defaults = {
        "backbone": "densenet121",
        "optimizer": {"name": "adam", "lr": 1.0e-3, "weight_decay": 1.0e-6},
        "lr_schedule": {"name": "plateau", "factor": 0.1, "patience": 50, "max_reductions": 3},
        "epochs": 204,
        "batch_size": 8,
        "frames_per_video": 270,
        "val_frames_per_video": 110,
        "real_windows": 2,
        "log_branch": True,
        "log_scales": 3,
        "log_sigma": 1.0,
        "fusion_groups": 2,
        "dense_dropout": 0.2,
        "lstm": True,
        "lstm_hidden": 128,
        "lstm_combine": "concat",
        "loss": "hypersphere",
        "r_minus": None,
        "r_plus": None,
        "block_lr": "output",
    }
    settings = {
        "backbone": {"type": "string", "enum": ["densenet121", "densenet169", "densenet201", "densenet161"],
                     "description": "A timm DenseNet (the paper: densenet121)."},
        "epochs": {"type": "integer", "minimum": 1,
                   "description": "Stratified epochs (the paper's unit: `real_windows` windows of every real video and "
                                  "as many fake ones, see real_windows); 204 = 4 x (patience 50 + 1): three plateaus "
                                  "that each end in a reduction and a fourth at the last lr."},
        "batch_size": {"type": "integer", "minimum": 2, "description": "Windows per training step."},
        "frames_per_video": {"type": "integer", "minimum": 1,
                             "description": "Faces per training video, in whole windows: ceil(k / F) complete windows "
                                            "spread over those the face stage stored (F = faces.windows.length; "
                                            "the paper: 270, 27 windows of 10)."},
        "val_frames_per_video": {"type": "integer", "minimum": 1,
                                 "description": "Faces per validation video, in whole windows (the paper: 110)."},
        "real_windows": {"type": "integer", "minimum": 1,
                         "description": "Stratified epoch: random windows drawn from every real training video (the paper: "
                                        "2); as many fake windows, shared equally by the trained manipulations "
                                        "(FF++: a random half of each's videos). `balanced: false`: every video once."},
        "log_branch": {"type": "boolean",
                       "description": "The Deep LoG branch (false: the single RGB branch of the paper's ablation, "
                                      "no fusion)."},
        "log_scales": {"type": "integer", "minimum": 1, "description": "Scales S of the Deep LoG branch."},
        "log_sigma": {"type": "number", "exclusiveMinimum": 0,
                      "description": "Sigma of the fixed Gaussian of the LoG branch (pixels of the stem's maps; 5 taps at 1)."},
        "fusion_groups": {"type": "integer", "enum": [1, 2],
                          "description": "Groups of the 1x1 fusion convolution (2: each branch to half the channels; "
                                         "1: mixed; the paper's ablation)."},
        "dense_dropout": {"type": "number", "minimum": 0, "maximum": 1,
                          "description": "Dropout after every dense layer (the first block and its LoG copy included) "
                                         "and after the fusion."},
        "lstm": {"type": "boolean",
                 "description": "Bidirectional LSTM over each window; false: frame by frame (1024-d embeddings, "
                                "every face its own sample and score)."},
        "lstm_hidden": {"type": "integer", "minimum": 1, "description": "LSTM hidden size per direction."},
        "lstm_combine": {"type": "string", "enum": ["concat", "sum"],
                         "description": "The two directions' last hidden states concatenated (D = 2 x hidden) or "
                                        "summed (D = hidden)."},
        "loss": {"type": "string", "enum": ["hypersphere", "ce"],
                 "description": "hypersphere: the paper's loss (Eq. 2) around the mean real embedding; ce: a linear "
                                "2-way head and cross-entropy (the plain encoder of the paper's ablation)."},
        "r_minus": {"type": ["number", "null"], "minimum": 0,
                    "description": "Hypersphere loss: reals are pulled inside this distance from the centre "
                                   "(null: the paper's, 0.042 with the LSTM, 2.5 without)."},
        "r_plus": {"type": ["number", "null"], "exclusiveMinimum": 0,
                   "description": "Hypersphere loss: fakes are pushed beyond this distance, > r_minus "
                                  "(null: the paper's, 1.638 with the LSTM, 97.5 without)."},
        "block_lr": {"type": "string", "enum": ["output", "input", "same"],
                     "description": "DenseNet block k learns at lr / 2^L: output - L counted from the last block "
                                    "(L = 1) down to the stem and first block (L = 4); input - the other way; "
                                    "same - all at lr. The LoG branch, fusion, LSTM and head learn at lr."},
    }

    data_class = WindowData

    def __init__(self, cfg: dict[str, Any]):
        super().__init__(cfg)
        import timm

        self.hypersphere = cfg["loss"] == "hypersphere"
        self.r_minus, self.r_plus = radii(cfg)
        if self.hypersphere and not self.r_minus < self.r_plus:
            raise InputError(f"config key 'detectors.{self.name}': r_minus ({self.r_minus}) must be below r_plus ({self.r_plus})")
        self.margin = (self.r_minus + self.r_plus) / 2  # R: the score is 0.5 there
        pretrained = cfg["pretrained"]
        drop = float(cfg["dense_dropout"])
        self.densenet = timm.create_model(cfg["backbone"], pretrained=pretrained is True, num_classes=0, proj_drop_rate=drop)
        if isinstance(pretrained, str):
            self.weights_report = load_weights_file(self.densenet, pretrained, f"detectors.{self.name}.pretrained")
        f = self.densenet.features
        stem, width = f.norm0.num_features, f.transition1.conv.out_channels
        if cfg["log_branch"]:
            self.log = MultiScaleLoG(stem, stem, int(cfg["log_scales"]), float(cfg["log_sigma"]))
            # the LoG branch's own first block and transition, initialised as the RGB branch's
            self.log_block = copy.deepcopy(f.denseblock1)
            self.log_transition = copy.deepcopy(f.transition1)
            self.fusion = nn.Conv2d(2 * width, width, kernel_size=1, groups=int(cfg["fusion_groups"]), bias=False)
            self.fusion_out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.Dropout(drop))
        else:
            self.log = self.log_block = self.log_transition = self.fusion = self.fusion_out = None
        hidden = int(cfg["lstm_hidden"])
        self.combine = cfg["lstm_combine"]
        self.lstm = nn.LSTM(self.densenet.num_features, hidden, batch_first=True, bidirectional=True) if cfg["lstm"] else None
        if cfg["lstm"]:
            self.embedding_size = 2 * hidden if self.combine == "concat" else hidden
        else:
            self.embedding_size = self.densenet.num_features
        self.head = None if self.hypersphere else nn.Linear(self.embedding_size, 2)
        self.register_buffer("center", torch.zeros(self.embedding_size))

    # -- model -------------------------------------------------------------
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        f = self.densenet.features
        return f.pool0(f.norm0(f.conv0(x)))

    def branches(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(Phi_RGB, Phi_LoG) maps of normalised faces (N, 3, H, W): each (N, 128, H/8, W/8)
        (28x28 at 224 px); Phi_LoG is None for the single-branch network."""
        f = self.densenet.features
        stem = self.stem(x)
        rgb = f.transition1(f.denseblock1(stem))
        if self.log is None:
            return rgb, None
        return rgb, self.log_transition(self.log_block(self.log(stem)))

    def frame_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised faces -> (N, 1024)."""
        f = self.densenet.features
        rgb, log = self.branches(x)
        x = rgb if log is None else self.fusion_out(self.fusion(torch.cat([rgb, log], dim=1)))
        for name in ("denseblock2", "transition2", "denseblock3", "transition3", "denseblock4", "norm5"):
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
        forward, backward = h[-2], h[-1]  # the last layer's two directions
        return torch.cat([forward, backward], dim=1) if self.combine == "concat" else forward + backward

    def distance(self, output: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(output - self.center, dim=-1)

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not self.hypersphere:
            logits = self.head(output)
            y = labels.view(-1, *([1] * (logits.dim() - 2))).expand(logits.shape[:-1])
            return F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1))
        d = self.distance(output)
        y = labels.view(-1, *([1] * (d.dim() - 1))).expand_as(d)
        real, fake = d[y == 0], d[y == 1]
        loss = d.new_zeros(())
        if real.numel():
            loss = loss + F.relu(real - self.r_minus).mean()
        if fake.numel():
            loss = loss + F.relu(self.r_plus - fake).mean()
        return loss

    # -- scores ------------------------------------------------------------
    def values(self, output: torch.Tensor) -> torch.Tensor:
        """What a video's score averages: the distance to the centre (hypersphere) or the fake
        probability (ce); (B,) per window with the LSTM, (B, F) per face without."""
        if self.hypersphere:
            return self.distance(output)
        return self.head(output).float().softmax(dim=-1)[..., 1]

    def face_values(self, output: torch.Tensor, faces: int) -> torch.Tensor:
        """(B, F): each face's value; with the LSTM every face of a window carries its window's."""
        v = self.values(output)
        return v[:, None].expand(-1, faces) if v.dim() == 1 else v

    def score_of(self, values):
        """Value -> score in [0, 1]: d / (d + R) for a distance, the probability itself for ce."""
        return values / (values + self.margin) if self.hypersphere else values

    def video_score(self, windows: list[np.ndarray]) -> float:
        """A video's score from its windows' face values (one array per window): g(mean over
        windows of the window's value), a window's value being the mean of its faces' (with the
        LSTM they are all the window's)."""
        return float(self.score_of(np.mean([np.mean(w) for w in windows])))

    def proba(self, output: torch.Tensor) -> torch.Tensor:
        """A window's score: g(its value), without the LSTM g(the mean of its faces' values)."""
        v = self.values(output)
        return self.score_of(v.mean(dim=1) if v.dim() == 2 else v)

    def trainable_parameters(self) -> list[dict]:
        """Param groups: the new layers at lr first (the logged lr), then each DenseNet block at lr / 2^L."""
        lr = float(self.cfg["optimizer"]["lr"])
        f = self.densenet.features
        blocks = [[f.conv0, f.norm0, f.denseblock1], [f.transition1, f.denseblock2], [f.transition2, f.denseblock3],
                  [f.transition3, f.denseblock4, f.norm5]]
        depth = {"output": [4, 3, 2, 1], "input": [1, 2, 3, 4], "same": [0, 0, 0, 0]}[self.cfg["block_lr"]]
        groups = [{"params": [p for m in self.new_modules() for p in m.parameters() if p.requires_grad], "lr": lr}]
        for modules, level in zip(blocks, depth):
            groups.append({"params": [p for m in modules for p in m.parameters() if p.requires_grad], "lr": lr / 2**level})
        return groups

    def new_modules(self) -> list[nn.Module]:
        """The layers that learn at lr: the LoG branch (its dense block copy included), the fusion,
        the LSTM and the cross-entropy head, those that exist."""
        return [m for m in (self.log, self.log_block, self.log_transition, self.fusion, self.fusion_out, self.lstm, self.head)
                if m is not None]
