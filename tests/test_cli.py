# SPDX-License-Identifier: Apache-2.0
"""The command line and its video I/O: upright video with its sound, and a run people can trust with an archive
(failed frames concealed and counted, truncated videos kept as partial, one bad file does not stop a folder, clear
errors before any work). Real PyAV, real embedded engine over the exported test repository; a stub engine only for
a frame failure the real engine cannot be made to produce."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from facecamo_client import EmbeddedEngine, FacecamoError
from facecamo_client.video import VideoReader, VideoWriter
from tests.conftest import PORTRAITS, ROOT

VIDEO = ROOT / "assets" / "video" / "video_01.mp4"  # 90 frames, 640x480 at 30000/1001 fps, AAC audio
NTSC = Fraction(30000, 1001)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facecamo_client.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def upright_frames(path: Path, count: int | None = None) -> list[np.ndarray]:
    """The first ``count`` frames of a video as players show it (uint8 RGB)."""
    frames = []
    with VideoReader(path) as reader:
        for frame in reader:
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


def make_clip(path: Path, frames: list[np.ndarray], rotation: int = 0, audio_codec: str | None = "aac",
              sample_rate: int = 16000) -> np.ndarray | None:
    """Write upright RGB ``frames`` as H.264 at 30000/1001 fps, stored turned so that a player applying the display
    ``rotation`` (degrees counter-clockwise, as FFmpeg's display matrix has it) shows them upright, with a mono 440 Hz
    sine as the audio track in ``audio_codec``. Returns the int16 samples written (None without audio)."""
    quarter_turns = (rotation // 90) % 4
    stored = [np.ascontiguousarray(np.rot90(frame, -quarter_turns)) for frame in frames]
    samples = None
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=NTSC)
        video.height, video.width = stored[0].shape[:2]
        video.pix_fmt = "yuv444p" if video.width % 2 or video.height % 2 else "yuv420p"  # 4:2:0 needs even sizes
        if rotation:
            video.set_display_rotation(rotation)
        audio = output.add_stream(audio_codec, rate=sample_rate, layout="mono") if audio_codec else None
        for index, frame in enumerate(stored):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            output.mux(video.encode(picture))
        output.mux(video.encode(None))
        if audio is not None:
            seconds = np.arange(int(sample_rate * len(frames) / float(NTSC))) / sample_rate
            samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * seconds)).astype(np.int16)
            for start in range(0, len(samples), 1024):
                chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="s16", layout="mono")
                chunk.sample_rate, chunk.pts = sample_rate, start
                output.mux(audio.encode(chunk))
            output.mux(audio.encode(None))
    return samples


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two frames downsampled to 80x60 grey (robust to camouflaged faces and re-encoding)."""
    small = [cv2.resize(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), (80, 60), interpolation=cv2.INTER_AREA).astype(float).ravel() for x in (a, b)]
    return float(np.corrcoef(*small)[0, 1])


@pytest.fixture(scope="module")
def first_frames() -> list[np.ndarray]:
    return upright_frames(VIDEO, 24)




def moving_face_frames(portrait: np.ndarray, count: int, step: int = 4) -> list[np.ndarray]:
    """``count`` 320x300 frames with the portrait sliding right by ``step`` px per frame."""
    frames = []
    for index in range(count):
        frame = np.full((300, 320, 3), 40, np.uint8)
        x = 10 + step * index
        frame[10: 10 + 275, x: x + 225] = portrait[:, : min(225, 320 - x)]
        frames.append(frame)
    return frames


# -- video I/O on its own (no engine) --------------------------------------------------------------------------------

def test_reader_applies_the_display_matrix_and_writer_keeps_rate_count_and_audio(tmp_path, first_frames):
    source = tmp_path / "phone.mp4"
    make_clip(source, first_frames[:12], rotation=-90)  # stored 480x640, shown 640x480: like a phone's portrait clip
    with av.open(str(source)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (480, 640)
    reader = VideoReader(source)
    assert (reader.size, reader.rotation, reader.frame_count, reader.rate, reader.has_audio) == ((640, 480), 270, 12, NTSC, True)
    frames = list(reader)
    assert reader.complete and len(frames) == 12 and frames[0].shape == (480, 640, 3)
    assert min(correlation(a, b) for a, b in zip(frames, first_frames)) > 0.98
    target = tmp_path / "copy.mp4"
    with VideoWriter(target, reader.rate, reader.size, audio_from=source, start_time=reader.start_time) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.audio == "copied aac"
    with VideoReader(target) as copy:
        assert (copy.size, copy.rotation, copy.frame_count, copy.rate, copy.audio_codec) == ((640, 480), 0, 12, NTSC, "aac")
    assert audio_packets(target) == audio_packets(source)  # stream copy: the sound is bit for bit the input's


def test_writer_transcodes_audio_the_container_cannot_hold_and_pads_odd_sizes(tmp_path, first_frames):
    source = tmp_path / "camera.mov"  # G.711 mu-law, as IP cameras record it: mp4 cannot hold it
    samples = make_clip(source, [f[:241, :321] for f in first_frames[:6]], audio_codec="pcm_mulaw", sample_rate=8000)
    reader = VideoReader(source)
    assert reader.size == (321, 241) and reader.audio_codec == "pcm_mulaw"
    frames = list(reader)
    target = tmp_path / "out.mp4"
    with VideoWriter(target, reader.rate, reader.size, audio_from=source) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.padded and writer.audio == "transcoded pcm_mulaw to aac"
    with VideoReader(target) as copy:
        written = list(copy)
        assert copy.size == (322, 242) and copy.audio_codec == "aac" and len(written) == 6
    # the padding repeats the last column and row; the picture itself is where it was
    assert np.abs(written[3][:241, :321].astype(int) - frames[3]).mean() < 4
    with av.open(str(target)) as container:
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(container.streams.audio[0])])
    assert np.abs(sound).max() == pytest.approx(0.3, abs=0.05) and len(sound) >= len(samples)


# -- the command line ------------------------------------------------------------------------------------------------

def test_command_line_turns_a_rotated_clip_upright_and_keeps_its_sound(repository, tmp_path, first_frames):
    source = tmp_path / "phone.mp4"
    make_clip(source, first_frames, rotation=-90)
    target = tmp_path / "out.mp4"
    result = cli(str(source), str(target), "--repository", str(repository), "--summary", str(tmp_path / "s.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    with VideoReader(target) as output:
        assert (output.size, output.rotation, output.frame_count, output.rate) == ((640, 480), 0, 24, NTSC)
        assert output.audio_codec == "aac"
        frames = list(output)
    assert len(frames) == 24
    # upright as players show the input: each frame matches the input's shown frame, and not its half-turned copy
    matches = [correlation(a, b) for a, b in zip(frames, first_frames)]
    assert min(matches) > 0.95, matches
    assert max(correlation(a, b[::-1, ::-1]) for a, b in zip(frames, first_frames)) < 0.8
    assert audio_packets(target) == audio_packets(source)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["video"]["rotation"] == 270 and summary["video"]["audio"] == "copied aac"
    assert summary["frames"] == 24 and summary["frames_failed"] == 0 and summary["files_failed"] == []


def test_command_line_reads_a_network_stream(repository, tmp_path, portrait_rgb):
    import functools
    import http.server
    import threading

    make_clip(tmp_path / "live.ts", moving_face_frames(portrait_rgb, 8), audio_codec=None)  # MPEG-TS: how streams are sent
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.ts"
        result = cli(url, str(tmp_path / "recording.mp4"), "--repository", str(repository), "--summary", str(tmp_path / "s.json"))
    finally:
        server.shutdown()
        thread.join()
    assert result.returncode == 0, result.stderr[-3000:]
    with VideoReader(tmp_path / "recording.mp4") as recording:
        assert len(list(recording)) == 8 and recording.size == (320, 300)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["frames"] == 8 and summary["video"]["frames_announced"] is None


def test_command_line_keeps_a_truncated_video_as_partial_and_fails(repository, tmp_path):
    source = tmp_path / "cut.mp4"
    source.write_bytes(VIDEO.read_bytes()[:180_000])  # the case: 32 of its 90 frames can be decoded
    target = tmp_path / "out.mp4"
    result = cli(str(source), str(target), "--repository", str(repository), "--summary", str(tmp_path / "s.json"))
    assert result.returncode == 1, result.stderr[-3000:]
    assert "read 32 of the 90 frames" in result.stderr and "out.partial.mp4" in result.stderr
    assert not target.exists()
    with VideoReader(tmp_path / "out.partial.mp4") as partial:
        assert len(list(partial)) == 32
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["partial_outputs"] == [str(tmp_path / "out.partial.mp4")]
    assert [f["file"] for f in summary["files_failed"]] == [str(source)]


def test_command_line_goes_through_a_folder_with_unreadable_files_and_lists_them(repository, tmp_path):
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.jpg").write_bytes((PORTRAITS / "congress_B000589.jpg").read_bytes())
    (source / "b.png").write_bytes((PORTRAITS / "nasa_eileen_collins.png").read_bytes())
    (source / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    (source / "sub" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    result = cli(str(source), str(out), "--repository", str(repository), "--summary", str(tmp_path / "s.json"))
    assert result.returncode == 1, result.stderr[-3000:]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["b.png", "sub/a.jpg"]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["files_done"] == 2
    assert sorted(Path(f["file"]).name for f in summary["files_failed"]) == ["broken.jpg", "corrupt.mp4"]
    assert "corrupt.mp4" in result.stderr and "broken.jpg" in result.stderr


@pytest.mark.parametrize("source, output, expected", [
    (PORTRAITS / "congress_B000589.jpg", "out.jpq", ".jpeg, .jpg, .png"),
    (VIDEO, "out.avi", ".m4v, .mkv, .mov, .mp4"),
    (VIDEO, "out", ".m4v, .mkv, .mov, .mp4"),
])
def test_command_line_names_the_extensions_that_work_before_any_work(tmp_path, source, output, expected):
    # no --repository that exists: the check must come before the engine is even opened
    result = cli(str(source), str(tmp_path / output), "--repository", str(tmp_path / "no_repository"))
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


@pytest.mark.parametrize("blocked, source, extra, served", [
    ("cv2", PORTRAITS / "congress_B000589.jpg", "video", True),  # `pip install .` then --server: was a traceback
    ("av", VIDEO, "video", False),
    ("onnxruntime", PORTRAITS / "congress_B000589.jpg", "embedded", False),
])
def test_command_line_names_the_extra_to_install_for_a_missing_package(request, tmp_path, blocked, source, extra, served):
    # the console script's entry point, in a process where `blocked` cannot be imported (as on a box without it)
    code = f"import sys; sys.modules[{blocked!r}] = None; from facecamo_client.cli import main; sys.exit(main(sys.argv[1:]))"
    where = ["--server", request.getfixturevalue("server").grpc_url] if served else ["--repository", str(tmp_path)]
    result = subprocess.run([sys.executable, "-c", code, str(source), str(tmp_path / f"out{source.suffix}"), *where],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and f'pip install "facecamo[{extra}]"' in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


def test_command_line_refuses_a_repository_whose_generator_is_garbage(repository, tmp_path, portrait_rgb):
    broken = tmp_path / "repository"
    shutil.copytree(repository, broken)
    generators = list(broken.glob("generator*/1/model.onnx"))
    assert generators, f"no generator model in {sorted(p.name for p in broken.iterdir())}"
    for model in generators:
        model.write_bytes(np.random.default_rng(1).bytes(4096))
    try:
        EmbeddedEngine(broken)
        refused = None
    except FacecamoError as error:
        refused = str(error)
    result = cli(str(PORTRAITS / "congress_B000589.jpg"), str(tmp_path / "out.png"), "--repository", str(broken),
                 "--summary", str(tmp_path / "s.json"))
    assert result.returncode == 1, result.stderr[-3000:]
    if refused is not None:  # the engine checks its models on opening: a clear error, nothing written
        assert "generator" in refused and "generator" in result.stderr and not (tmp_path / "out.png").exists()
    else:  # the engine opened: the face must come out concealed and the frame counted as failed
        summary = json.loads((tmp_path / "s.json").read_text())
        assert summary["frames_failed"] == 1
        output = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2RGB)
        assert not np.all(output == portrait_rgb, axis=2)[60:220, 40:190].any()


class FailingEngine(EmbeddedEngine):
    """The real engine, except that some frames fail as a whole, raising from ``submit`` as a crashed model server
    or a bug would: what the real engine cannot be made to do on purpose (it conceals its own failures)."""

    def __init__(self, repository: Path, fail_calls: set[int] | None = None) -> None:
        super().__init__(repository)
        self.fail_calls = fail_calls  # 1-based submit calls that fail; None: every call
        self.calls = 0

    def submit(self, frame, appearance=None, boxes=None, tracks=None):
        self.calls += 1
        if self.fail_calls is None or self.calls in self.fail_calls:
            raise RuntimeError("generator crashed")
        return super().submit(frame, appearance, boxes, tracks)


def run_in_process(monkeypatch, engine, *args: str) -> int:
    from facecamo_client import cli as command_line

    monkeypatch.setattr(command_line, "open_engine", lambda parsed: engine)
    return command_line.main(list(args))


@pytest.mark.parametrize("fail_calls", [None, {3, 4, 9}], ids=["every frame", "some frames"])
def test_command_line_conceals_and_counts_the_frames_the_engine_fails_on(repository, tmp_path, monkeypatch, portrait_rgb, fail_calls):
    frames = moving_face_frames(portrait_rgb, 12)
    source = tmp_path / "clip.mp4"
    make_clip(source, frames, audio_codec=None)
    shown = upright_frames(source)
    with EmbeddedEngine(repository) as reference:  # where the faces are, by the real detector
        boxes = [[tuple(int(round(v)) for v in face.box) for face in reference.camouflage(frame).faces] for frame in shown]
    assert sum(map(len, boxes)) >= 11
    target, summary_path = tmp_path / "out.mp4", tmp_path / "s.json"
    code = run_in_process(monkeypatch, FailingEngine(repository, fail_calls), str(source), str(target), "--summary", str(summary_path))
    summary = json.loads(summary_path.read_text())
    failed = [i for first, last in summary["frames_failed_by_file"].get(str(source), []) for i in range(first, last + 1)]
    assert code == 1 and summary["frames"] == 12 and summary["frames_failed"] == len(failed) > 0
    assert len(failed) == 12 if fail_calls is None else 0 < len(failed) < 12
    assert all("generator crashed" in reason for reason in summary["frame_failure_reasons"])
    written = upright_frames(target)
    assert len(written) == 12  # every frame written, none dropped
    for index in failed:
        for left, top, right, bottom in boxes[index]:
            face_in, face_out = shown[index][top:bottom, left:right].astype(int), written[index][top:bottom, left:right].astype(int)
            # concealed: far beyond re-encoding noise (about 1.5 at CRF 20; 18-20 measured for the blur here), and
            # practically no pixel keeps its value (exactly none in a lossless output: see the image test below)
            assert np.abs(face_out - face_in).mean() > 8
            assert np.all(face_out == face_in, axis=2).mean() < 0.005


def test_command_line_conceals_a_failed_image_exactly(repository, tmp_path, monkeypatch, portrait_rgb):
    target = tmp_path / "out.png"
    code = run_in_process(monkeypatch, FailingEngine(repository), str(PORTRAITS / "congress_B000589.jpg"), str(target),
                          "--summary", str(tmp_path / "s.json"))
    assert code == 1 and json.loads((tmp_path / "s.json").read_text())["frames_failed"] == 1
    output = cv2.cvtColor(cv2.imread(str(target)), cv2.COLOR_BGR2RGB)
    assert not np.all(output == portrait_rgb, axis=2).any()  # lossless output: not one pixel of the input passes


def test_command_line_detect_every_reaches_the_engine_only_where_it_is_taken(repository, tmp_path, monkeypatch, portrait_rgb):
    import inspect

    source = tmp_path / "clip.mp4"
    make_clip(source, moving_face_frames(portrait_rgb, 3), audio_codec=None)
    engine = EmbeddedEngine(repository)
    if "detect_every" in inspect.signature(engine.stream).parameters:
        seen = {}
        stream = engine.stream

        def recording_stream(frames, **options):
            seen.update(options)
            return stream(frames, **options)

        monkeypatch.setattr(engine, "stream", recording_stream)
        code = run_in_process(monkeypatch, engine, str(source), str(tmp_path / "out.mp4"), "--detect-every", "2")
        assert code == 0 and seen["detect_every"] == 2
    else:
        print("EmbeddedEngine.stream takes no detect_every yet: checking the command line refuses the option clearly")
        result = cli(str(source), str(tmp_path / "out.mp4"), "--repository", str(repository), "--detect-every", "2")
        assert result.returncode == 2 and "--detect-every" in result.stderr and "Traceback" not in result.stderr


def test_command_line_appearance_keeps_tracking_on(repository, tmp_path, monkeypatch, portrait_rgb):
    """--appearance N turned tracking off: a person the detector missed in a frame was left uncovered."""
    frames = moving_face_frames(portrait_rgb, 8)
    frames[4] = frames[4].copy()
    frames[4][10:285] = 40  # the person is hidden in this frame
    source, summary_path = tmp_path / "clip.mp4", tmp_path / "s.json"
    make_clip(source, frames, audio_codec=None)
    code = run_in_process(monkeypatch, EmbeddedEngine(repository), str(source), str(tmp_path / "out.mp4"), "--appearance", "3",
                          "--max-in-flight", "1", "--summary", str(summary_path))
    summary = json.loads(summary_path.read_text())
    assert code == 0 and summary["faces"] == 8, summary
    assert summary["faces_by_source"] == {"detected": 7, "track": 1}


class SlowEngine(EmbeddedEngine):
    """The embedded engine 50 ms slower per frame: behind the clip's 30 frames/s on any machine."""

    def run(self, frame, appearance=None, boxes=None, tracks=None):
        time.sleep(0.05)
        return super().run(frame, appearance, boxes, tracks)


def test_command_line_live_drops_frames_when_behind_and_keeps_their_time(repository, tmp_path, monkeypatch):
    target, summary_path = tmp_path / "out.mp4", tmp_path / "s.json"
    started = time.monotonic()
    code = run_in_process(monkeypatch, SlowEngine(repository), str(VIDEO), str(target), "--live", "--max-latency", "0.5",
                          "--summary", str(summary_path))
    seconds = time.monotonic() - started
    summary = json.loads(summary_path.read_text())
    live = summary["video"]["live"]
    assert code == 0, summary
    assert live["frames_read"] == 90 and seconds >= 3.0  # the file was read at its own rate: 3 s of video
    assert summary["frames_dropped"] == live["frames_dropped"] > 0 and summary["frames"] + summary["frames_dropped"] == 90
    assert live["latency_max_s"] <= 0.5 + 0.05
    with av.open(str(target)) as container:  # fewer frames, each at its own place in time: gaps where frames dropped
        places = [float(frame.time) * NTSC for frame in container.decode(container.streams.video[0])]
    steps = [place - places[0] for place in places]  # in frames of the input, from the first frame written
    assert len(places) == summary["frames"] and all(abs(step - round(step)) < 0.01 for step in steps)
    assert steps == sorted(steps) and steps[-1] < 90 and steps[-1] + 1 > len(places)
    assert cli(str(PORTRAITS / "congress_B000589.jpg"), str(tmp_path / "x.png"), "--live").returncode == 2


# -- moved from test_client.py ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["embedded", "server"])
def test_command_line_on_a_short_video_keeps_frame_count_and_fps(path, request, repository, portrait_rgb, tmp_path):
    source = tmp_path / "clip.mp4"
    make_clip(source, moving_face_frames(portrait_rgb, 12), audio_codec=None)
    target = tmp_path / "out.mp4"
    extra = ["--server", request.getfixturevalue("server").grpc_url] if path == "server" else ["--repository", str(repository)]
    result = cli(str(source), str(target), *extra, "--summary", str(tmp_path / "summary.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    with VideoReader(target) as output:
        assert output.frame_count == 12 and len(list(output)) == 12 and output.rate == NTSC
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames"] == 12 and summary["faces"] >= 11


def test_command_line_on_a_folder_mirrors_its_layout(repository, tmp_path):
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    for name in ("congress_B000589.jpg", "congress_G000570.jpg"):
        (source / "sub" / name).write_bytes((PORTRAITS / name).read_bytes())
    (source / "top.png").write_bytes((PORTRAITS / "nasa_eileen_collins.png").read_bytes())
    result = cli(str(source), str(tmp_path / "out"), "--repository", str(repository), "--side-by-side")
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*"))
    assert written == ["sub/congress_B000589.jpg", "sub/congress_G000570.jpg", "top.png"]
    side = cv2.imread(str(tmp_path / "out" / "sub" / "congress_B000589.jpg"))
    assert side.shape == (275, 450, 3)  # original | camouflaged


def test_command_line_errors(server, repository, tmp_path):
    from serving.ports import free_port

    (tmp_path / "notes.txt").write_text("hello")
    result = cli(str(tmp_path / "notes.txt"), str(tmp_path / "o.jpg"), "--repository", str(repository))
    assert result.returncode == 2 and "unsupported input" in result.stderr
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    result = cli(str(tmp_path / "broken.jpg"), str(tmp_path / "o.jpg"), "--repository", str(repository))
    assert result.returncode == 2 and "cannot read" in result.stderr
    result = cli(str(PORTRAITS / "congress_B000589.jpg"), str(tmp_path / "o.jpg"), "--server", f"127.0.0.1:{free_port()}", "--retry-for", "1")
    assert result.returncode == 2 and "cannot reach the server" in result.stderr


def test_make_camouflage_shows_help_and_says_the_exit_code_the_wrapper_returns(repository, tmp_path):
    """make can only exit 0 or 2: `make camouflage` names the command line's own code, bin/facecamo-camouflage returns
    it; ARGS=--help reaches the command line instead of make's usage line."""
    (tmp_path / "ready").touch()  # this interpreter's environment is already set up: make must not rebuild it
    make = ["make", "--no-print-directory", "camouflage", f"BIN={Path(sys.executable).parent}", f"READY={tmp_path / 'ready'}"]
    shown = subprocess.run([*make, "ARGS=--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "usage: facecamo-camouflage" in shown.stdout and "--side-by-side" in shown.stdout
    source = tmp_path / "in"
    source.mkdir()
    (source / "broken.jpg").write_bytes(b"not a jpeg")  # a file that fails: exit 1, not a usage error
    made = subprocess.run([*make, f"IN={source}", f"OUT={tmp_path / 'made'}", f"ARGS=--repository {repository}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert made.returncode == 2 and "facecamo-camouflage exited 1 (a frame or file failed)" in made.stderr, made.stderr[-2000:]
    if Path(sys.prefix) != ROOT / ".venv":
        pytest.skip("bin/facecamo-camouflage runs the checkout's .venv, and this interpreter is another one")
    wrapped = subprocess.run([str(ROOT / "bin" / "facecamo-camouflage"), str(source), str(tmp_path / "wrapped"),
                              "--repository", str(repository)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert wrapped.returncode == 1, wrapped.stderr[-2000:]
    assert [Path(f["file"]).name for f in json.loads(wrapped.stdout)["files_failed"]] == ["broken.jpg"]
