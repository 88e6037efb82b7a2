"""What the face stage and the test copies share: the per-video loop of a
shard job and the summary of many shards.

Every video of a shard gets one summary row, whatever happens to it: "ok"
(its faces are stored), "no_face" (fewer than faces.min_faces frames with a
face) or "error" (missing, empty, truncated, corrupt: the one-line reason is
in `message`). A bad video is logged and excluded; the others go on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Hashable

import pandas as pd

from dfrobust.core.errors import ConfigError, InputError
from dfrobust.core.io import atomic_path
from dfrobust.media.store import FaceRecord

IDENTITY = ("video_id", "manipulation", "label", "path")

# work(video) -> {output key: (faces of the video, extra summary fields)}
Work = Callable[[dict], dict[Hashable, tuple[FaceRecord, dict]]]


def process_videos(videos: list[dict], keys: list[Hashable], work: Work, min_faces: int, log: Callable[[str], None],
                   desc: str = "videos", context: Callable[[Hashable], str] = lambda key: "",
                   progress: bool = True) -> dict[Hashable, tuple[list[FaceRecord], list[dict]]]:
    """Run `work` on every video; returns, per output key, the records kept and
    one summary row per video.

    Every video row has a status: "ok" for an index row (the face stage), the
    clean faces' for a test copy; a video already excluded (status other
    than "ok", in the clean faces) keeps that status. `work` raising
    InputError excludes the video from every output (a ConfigError stops the job); a record with fewer
    than `min_faces` faces excludes it from that output. `context(key)`
    says in messages which output it was (" after vflip (faces: reuse)").
    """
    from tqdm import tqdm

    out: dict[Hashable, tuple[list[FaceRecord], list[dict]]] = {key: ([], []) for key in keys}
    for video in tqdm(videos, desc=desc, unit="video", disable=not progress):
        base = {k: video.get(k) for k in IDENTITY}
        if video["status"] != "ok":
            n = video["n_sampled"]
            for key in keys:
                out[key][1].append({**base, "status": video["status"], "message": f"clean faces: {video['message']}",
                                    "n_sampled": n, "n_found": 0, "n_missed": n})
            continue
        try:
            results = work(video)
        except ConfigError:
            raise  # a setting is wrong: every video would fail the same way
        except InputError as err:
            log(f"EXCLUDED {video['video_id']}: {err}")
            n = video.get("n_sampled", 0)  # an index row (the face stage) has sampled nothing yet
            for key in keys:
                out[key][1].append({**base, "status": "error", "message": str(err), "n_sampled": n, "n_found": 0,
                                    "n_missed": n})
            continue
        for key, (record, fields) in results.items():
            n_sampled, n_found = len(record.sampled_indices), record.n_faces
            row = {**base, **fields, "n_sampled": n_sampled, "n_found": n_found, "n_missed": n_sampled - n_found,
                   "status": "ok", "message": ""}
            if n_found < min_faces:
                row["status"] = "no_face"
                row["message"] = (f"{base['path']}: no face found in {n_sampled} sampled frames{context(key)}" if n_found == 0
                                  else f"{base['path']}: face found in only {n_found} of {n_sampled} sampled frames"
                                       f"{context(key)} (< faces.min_faces={min_faces})")
                log(f"EXCLUDED {video['video_id']}: {row['message']}")
            else:
                if n_found < n_sampled:
                    log(f"{video['video_id']}{context(key)}: no face in {n_sampled - n_found} of {n_sampled} sampled frames")
                out[key][0].append(record)
            out[key][1].append(row)
    return out


def summarise(shard_jsons: list[str | Path], out_csv: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """One row per (shard, video) over many shard summaries; each column is
    taken from the video's row, or else from its shard's summary."""
    rows = []
    for path in shard_jsons:
        shard = json.loads(Path(path).read_text())
        rows += [{c: video.get(c, shard.get(c)) for c in columns} for video in shard["videos"]]
    table = pd.DataFrame(rows, columns=list(columns))
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table
