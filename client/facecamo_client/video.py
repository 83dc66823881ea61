# SPDX-License-Identifier: Apache-2.0
"""Reading and writing images and videos for the command line.

Images go through OpenCV. Videos go through PyAV (FFmpeg's libraries, in its wheels), because one library does all
three things a camouflaged copy of a video needs and OpenCV 4.x does none of them here:

- **rotation**: phones store portrait video as landscape pixels plus a display matrix; :class:`VideoReader` applies it,
  so frames reach the face detector upright, and :class:`VideoWriter` writes them upright (players then show the
  output as they show the input, without any rotation flag);
- **sound**: the input's audio track is copied into the output unchanged (transcoded to AAC only where the output
  container cannot hold its codec);
- **H.264** (libx264, yuv420p) at the input's frame rate, one output frame per input frame.

Every frame handed around is a uint8 (H, W, 3) **RGB** numpy array, upright as players show it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from facecamo_client.extras import need

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".3gp", ".flv", ".wmv"}
# What a camouflaged video can be written as: containers that hold H.264 and AAC and that players open everywhere.
VIDEO_OUTPUT_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv"}
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")
# Seconds to wait for a network stream to open, and for its next packet, before giving up.
STREAM_TIMEOUTS_S = (20.0, 30.0)


def _cv2(what: str = "reading and writing images"):
    return need("cv2", "video", what)


def _av(what: str = "reading and writing videos"):
    return need("av", "video", what)


def require_extra(videos: bool) -> None:
    """Raise :class:`facecamo_client.errors.MissingExtraError` (``pip install "facecamo[video]"``) unless what this
    module needs is installed: OpenCV always (images, and concealing a failed frame), PyAV for ``videos``."""
    what = "camouflaging videos" if videos else "camouflaging images"
    _cv2(what)
    if videos:
        _av(what)


def is_stream(source: str | Path) -> bool:
    """True for an RTSP/RTMP/HTTP(S) URL."""
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


def check_output_suffix(path: Path, kind: str) -> None:
    """Raise ValueError, naming the extensions that work, when ``path`` cannot be written as ``kind`` ("image" or
    "video"). Called before any work, so a typo costs nothing."""
    allowed = IMAGE_SUFFIXES if kind == "image" else VIDEO_OUTPUT_SUFFIXES
    if path.suffix.lower() not in allowed:
        what = "an existing folder or a path ending in" if kind == "image" else "a path ending in"
        raise ValueError(f"cannot write {'an image' if kind == 'image' else 'a video'} to {path}: the output must be {what} "
                         f"{', '.join(sorted(allowed))}")


def read_image(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB; ValueError when the file is missing, unreadable or not an image."""
    cv2 = _cv2()

    data = np.fromfile(str(path), np.uint8) if Path(path).is_file() else None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if bgr is None:
        raise ValueError(f"cannot read {path} as an image (missing, unreadable or corrupt)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Write uint8 (H, W, 3) RGB; the format follows the extension (see IMAGE_SUFFIXES)."""
    cv2 = _cv2()

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"cannot write {path} (use one of {', '.join(sorted(IMAGE_SUFFIXES))}, in a writable folder)")


def _ffmpeg_errors() -> tuple[type[BaseException], ...]:
    av = _av()

    # FFmpegError covers decode and demux failures; OSError covers a stream that drops (PyAV raises OSError subclasses).
    return (av.FFmpegError, OSError)


class VideoReader:
    """Upright uint8 (H, W, 3) RGB frames of a video file or stream, in order.

    Attributes (known once opened; the first frame is decoded on opening, so an undecodable file fails here):
        rate: frames per second as an exact fraction (30000/1001 for NTSC), ``fps`` the same as a float.
        frame_count: the number of frames the container announces, or None (streams, some containers).
        rotation: quarter turns counter-clockwise the display matrix asks for, in degrees (0, 90, 180 or 270);
            frames are already turned, so ``size`` is the size players show.
        size: (width, height) of the upright frames.
        start_time: seconds of the first frame on the container's clock (keeps the audio in sync when copied).
        has_audio, audio_codec: whether the input has an audio track, and its codec name.
        frames_read: frames yielded so far.
        error: why decoding stopped early (a decode or network error), or None.
    """

    def __init__(self, source: str | Path) -> None:
        av = _av()

        self.source = str(source)
        self.is_stream = is_stream(self.source)
        try:
            self._container = av.open(self.source, timeout=STREAM_TIMEOUTS_S if self.is_stream else None)
        except _ffmpeg_errors() as error:
            raise ValueError(f"cannot open video {self.source}: {error} (missing file, unsupported format, a file "
                             "truncated before its index, or an unreachable stream)") from error
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"{self.source} holds no video track")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"  # frame-threaded decoding: decoding stays well ahead of camouflage
        self.rate = Fraction(self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate or 25)
        self.frame_count: int | None = int(self._stream.frames) if self._stream.frames and not self.is_stream else None
        audio = self._container.streams.audio
        self.has_audio = bool(audio)
        self.audio_codec: str | None = audio[0].codec_context.name if audio else None
        self.frames_read = 0
        self.error: str | None = None
        self._frames = self._container.decode(self._stream)
        try:
            first = next(self._frames)
        except StopIteration:
            first = None
        except _ffmpeg_errors() as error:
            self._container.close()
            raise ValueError(f"cannot decode {self.source}: {error} (corrupt or unsupported video)") from error
        if first is None:
            self._container.close()
            raise ValueError(f"{self.source} holds no decodable video frame (empty or corrupt)")
        # The display matrix's angle is counter-clockwise (FFmpeg's convention, which VideoFrame.rotation keeps);
        # np.rot90 turns counter-clockwise too. Non-quarter angles do not occur in practice: take the nearest.
        self._quarter_turns = int(round(float(first.rotation or 0) / 90.0)) % 4
        self.rotation = 90 * self._quarter_turns
        width, height = first.width, first.height
        self.size = (height, width) if self._quarter_turns % 2 else (width, height)
        self.start_time = float(first.time) if first.time is not None else 0.0
        self._first = first
        self._started = False

    @property
    def fps(self) -> float:
        return float(self.rate)

    def _upright(self, frame) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        return np.ascontiguousarray(np.rot90(rgb, self._quarter_turns)) if self._quarter_turns else rgb

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield every decodable frame once. A decode or network error ends the iteration and is kept in ``error``
        (callers check :attr:`complete`), so what was read before it can still be written."""
        if self._started:
            raise RuntimeError("a VideoReader can be iterated only once; open the video again")
        self._started = True
        try:
            pending = self._first
            self._first = None
            while pending is not None:
                self.frames_read += 1
                yield self._upright(pending)
                try:
                    pending = next(self._frames)
                except StopIteration:
                    pending = None
                except _ffmpeg_errors() as error:
                    self.error = f"decoding stopped after frame {self.frames_read}: {error}"
                    pending = None
        finally:
            self.close()

    @property
    def complete(self) -> bool:
        """True when every frame was read: no decode error, and as many frames as the container announces."""
        return self.problem is None

    @property
    def problem(self) -> str | None:
        """Why the video was not read in full, in words, or None."""
        if self.error:
            return self.error
        if self.frame_count is not None and self.frames_read != self.frame_count:
            return (f"read {self.frames_read} of the {self.frame_count} frames its container announces "
                    "(truncated or corrupt file)")
        return None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoWriter:
    """Writes upright uint8 (H, W, 3) RGB frames as H.264 (libx264, yuv420p) at ``fps``, one output frame per frame
    given, and copies the audio track of ``audio_from``.

    Args:
        path: output file; its extension picks the container (VIDEO_OUTPUT_SUFFIXES).
        fps: frames per second, a float or (better, to keep 30000/1001 exact) a Fraction.
        size: (width, height) of the frames to be written. yuv420p needs even sizes: an odd width or height is
            padded by repeating the last column or row (``padded`` says so), never cropped, so no pixel is lost.
        audio_from: a video file whose first audio track is copied into the output (stream copy when the container
            holds its codec, e.g. AAC into mp4; else transcoded to AAC). None, a stream URL, or a file without audio:
            no audio.
        start_time: seconds of the first frame on the input's clock (VideoReader.start_time): keeps the copied audio
            in sync when the input's video starts later than its audio.
        crf: libx264 quality (lower is better; 18-23 is visually transparent to good).
    Attributes:
        codec ("h264"), audio (what happened to the audio: "copied aac", "transcoded pcm_mulaw to aac" or None),
        frames_written, padded.
    """

    def __init__(self, path: Path, fps: float | Fraction, size: tuple[int, int], audio_from: str | Path | None = None,
                 start_time: float = 0.0, crf: int = 20, preset: str = "medium") -> None:
        av = _av()

        path = Path(path)
        check_output_suffix(path, "video")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.codec, self.audio, self.frames_written = path, "h264", None, 0
        self.rate = Fraction(fps).limit_denominator(1_000_000)
        width, height = size
        self.size = (width, height)
        self.padded = bool(width % 2 or height % 2)
        options = {"movflags": "+faststart"} if path.suffix.lower() in {".mp4", ".m4v", ".mov"} else {}
        self._output = av.open(str(path), "w", container_options=options)
        self._video = self._output.add_stream("libx264", rate=self.rate, options={"crf": str(crf), "preset": preset})
        self._video.width, self._video.height = width + width % 2, height + height % 2
        self._video.pix_fmt = "yuv420p"
        self._first_pts = round(start_time * self.rate)
        self._audio_input = self._audio_packets = self._audio_in_stream = self._audio_out = None
        self._pending_audio = None
        self._transcode = False
        if audio_from is not None and not is_stream(audio_from):
            self._open_audio(str(audio_from))

    def _open_audio(self, source: str) -> None:
        av = _av()

        try:
            self._audio_input = av.open(source)
        except _ffmpeg_errors():
            return  # the video itself reports an unreadable input; the writer only loses the sound
        if not self._audio_input.streams.audio:
            self._audio_input.close()
            self._audio_input = None
            return
        self._audio_in_stream = self._audio_input.streams.audio[0]
        name = self._audio_in_stream.codec_context.name
        if name in self._output.supported_codecs:
            self._audio_out = self._output.add_stream_from_template(self._audio_in_stream)
            self.audio = f"copied {name}"
        else:
            context = self._audio_in_stream.codec_context
            self._audio_out = self._output.add_stream("aac", rate=context.sample_rate, layout=context.layout.name)
            self._transcode = True
            self.audio = f"transcoded {name} to aac"
        self._audio_packets = self._audio_input.demux(self._audio_in_stream)

    def write(self, rgb: np.ndarray, index: int | None = None) -> None:
        """Encode one uint8 (H, W, 3) RGB frame of the ``size`` given at construction; ``index``: its place in the
        input (frame number, increasing), where frames were left out (a live recording that dropped frames), so it
        keeps its time; None: the next place."""
        av = _av()

        if rgb.shape[:2] != (self.size[1], self.size[0]) or rgb.dtype != np.uint8:
            raise ValueError(f"frame of shape {rgb.shape} ({rgb.dtype}) given to a writer of {self.size[0]}x{self.size[1]} uint8")
        if self.padded:
            rgb = np.pad(rgb, ((0, self.size[1] % 2), (0, self.size[0] % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._first_pts + (self.frames_written if index is None else index)
        frame.time_base = 1 / self.rate
        self._output.mux(self._video.encode(frame))
        self.frames_written += 1
        # Interleave the audio up to the video written so far: memory stays bounded and players stream the file.
        self._mux_audio(until_s=float(frame.pts / self.rate))

    def _mux_audio(self, until_s: float | None) -> None:
        if self._audio_packets is None:
            return
        while True:
            packet = self._pending_audio
            if packet is None:
                try:
                    packet = next(self._audio_packets)
                except StopIteration:
                    self._audio_packets = None
                    break
                except _ffmpeg_errors():
                    # A truncated input ends its audio early too: keep what was copied.
                    self._audio_packets = None
                    break
            stamp = packet.dts if packet.dts is not None else packet.pts
            if stamp is None:  # the demuxer's end-of-stream marker: nothing to write
                self._pending_audio = None
                continue
            if until_s is not None and float(stamp * packet.time_base) > until_s:
                self._pending_audio = packet  # belongs after a later video frame
                break
            self._pending_audio = None
            if self._transcode:
                for decoded in self._audio_in_stream.decode(packet):
                    decoded.pts = None  # the encoder numbers its own samples
                    self._output.mux(self._audio_out.encode(decoded))
            else:
                packet.stream = self._audio_out
                self._output.mux(packet)

    def close(self) -> None:
        """Flush the encoder and the rest of the audio, and finish the file (always closes it, even on error)."""
        try:
            self._output.mux(self._video.encode(None))
            self._mux_audio(until_s=None)
            if self._transcode:
                self._output.mux(self._audio_out.encode(None))
        finally:
            if self._audio_input is not None:
                self._audio_input.close()
                self._audio_input = None
            self._output.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def side_by_side(original: np.ndarray, camouflaged: np.ndarray) -> np.ndarray:
    """original | camouflaged, for review: uint8 (H, 2W, 3)."""
    return np.concatenate([original, camouflaged], axis=1)
