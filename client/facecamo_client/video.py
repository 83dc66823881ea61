"""Reading and writing images and videos for the command line (OpenCV; H.264 through imageio-ffmpeg when present)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")


def is_stream(source: str) -> bool:
    return str(source).lower().startswith(STREAM_PREFIXES)


def kind_of(path: str | Path) -> str:
    """"image", "video" or "folder"; raises ValueError for anything else."""
    if is_stream(str(path)):
        return "video"
    path = Path(path)
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise ValueError(f"unsupported input {path}: expected an image ({', '.join(sorted(IMAGE_SUFFIXES))}), "
                     f"a video ({', '.join(sorted(VIDEO_SUFFIXES))}), a folder or an RTSP/HTTP stream URL")


def read_image(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(str(path), np.uint8) if Path(path).is_file() else None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if bgr is None:
        raise ValueError(f"cannot read {path} as an image (missing, unreadable or corrupt)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_image(path: Path, rgb: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write {path} (unknown image extension or unwritable folder)")


class VideoReader:
    """RGB frames of a video file or stream, with its fps and (for files) frame count."""

    def __init__(self, source: str) -> None:
        import cv2

        self._capture = cv2.VideoCapture(str(source))
        if not self._capture.isOpened():
            raise ValueError(f"cannot open video {source} (missing file, unsupported codec or unreachable stream)")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 25.0
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self.size = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def __iter__(self) -> Iterator[np.ndarray]:
        import cv2

        while True:
            ok, bgr = self._capture.read()
            if not ok:
                break
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self._capture.release()


class VideoWriter:
    """Writes RGB frames at ``fps``: H.264 (libx264 from imageio-ffmpeg) when available, else OpenCV's mp4v."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.codec, self._ffmpeg, self._cv = path, None, None, None
        width, height = size
        try:
            import imageio_ffmpeg

            if width % 2 or height % 2:
                raise ValueError("H.264 (yuv420p) needs even frame sizes")
            self._ffmpeg = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, codec="libx264", pix_fmt_in="rgb24",
                                                       pix_fmt_out="yuv420p", quality=None, output_params=["-crf", "20"],
                                                       macro_block_size=1, ffmpeg_log_level="error")
            self._ffmpeg.send(None)
            self.codec = "h264"
        except (ImportError, ValueError, RuntimeError):
            import cv2

            self._ffmpeg = None
            self._cv = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
            if not self._cv.isOpened():
                raise ValueError(f"cannot write video {path}")
            self.codec = "mp4v"

    def write(self, rgb: np.ndarray) -> None:
        if self._ffmpeg is not None:
            self._ffmpeg.send(np.ascontiguousarray(rgb))
        else:
            import cv2

            self._cv.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        if self._ffmpeg is not None:
            self._ffmpeg.close()
        if self._cv is not None:
            self._cv.release()


def side_by_side(original: np.ndarray, camouflaged: np.ndarray) -> np.ndarray:
    """original | camouflaged, for review."""
    return np.concatenate([original, camouflaged], axis=1)


def conceal_frame(frame: np.ndarray) -> np.ndarray:
    """Fail closed for a frame the engine could not process: a heavy blur of the whole frame."""
    import cv2

    small = cv2.resize(frame, (max(1, frame.shape[1] // 24), max(1, frame.shape[0] // 24)), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(cv2.resize(small, frame.shape[1::-1], interpolation=cv2.INTER_LINEAR), (0, 0), 3)
