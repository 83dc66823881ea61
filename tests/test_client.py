# SPDX-License-Identifier: Apache-2.0
"""The SDK and the command line, against a real Triton started by the suite and against the embedded engine."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from facecamo_client import (
    CamouflageClient, InvalidInputError, ServerUnavailableError,
)
from tests.conftest import PORTRAITS, ROOT








def moving_face_frames(portrait: np.ndarray, count: int, step: int = 4) -> list[np.ndarray]:
    """``count`` 320x300 frames with the portrait sliding right by ``step`` px per frame and a frame number drawn in a
    corner (to check order)."""
    frames = []
    for index in range(count):
        frame = np.full((300, 320, 3), 40, np.uint8)
        x = 10 + step * index
        frame[10 : 10 + 275, x : x + 225] = portrait[:, : min(225, 320 - x)]
        cv2.putText(frame, str(index), (250, 290), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        frames.append(frame)
    return frames


def test_single_frame(sdk, portrait_rgb):
    assert sdk.is_server_ready() and sdk.is_model_ready()
    result = sdk.camouflage(portrait_rgb)
    assert result.frame.shape == portrait_rgb.shape and len(result.faces) == 1
    assert result.faces[0].status == "camouflaged" and result.all_camouflaged
    assert np.abs(result.frame.astype(int) - portrait_rgb).mean() > 1


def test_stream_complete_in_order_and_the_same_person_keeps_the_look(sdk, portrait_rgb):
    frames = moving_face_frames(portrait_rgb, 30)
    results = list(sdk.stream(frames, max_in_flight=4))
    assert [r.index for r in results] == list(range(30))
    for frame, result in zip(frames, results):  # the frame-number corner is outside every face: returned as sent
        np.testing.assert_array_equal(result.frame[270:300, 240:320], frame[270:300, 240:320])
    faces = [r.faces[0] for r in results if r.faces]
    assert len(faces) >= 28
    assert len({f.track_id for f in faces}) == 1 and len({f.appearance for f in faces}) == 1


def test_a_newcomer_gets_a_different_look(sdk, portrait_rgb):
    from facecamo.align import load_rgb

    other = load_rgb(str(PORTRAITS / "congress_G000570.jpg"))
    first = np.concatenate([portrait_rgb, np.full_like(portrait_rgb, 40)], axis=1)
    second = np.concatenate([portrait_rgb, other], axis=1)
    results = list(sdk.stream([first, first, second, second], max_in_flight=1))
    looks = {f.track_id: f.appearance for r in results for f in r.faces}
    assert len(looks) == 2 and len(set(looks.values())) == 2


def test_errors_are_the_sdks_own_types_with_the_servers_message(sdk, portrait_rgb):
    with pytest.raises(InvalidInputError, match="out of range") as caught:
        sdk.camouflage(portrait_rgb, appearance=999)
    assert "INVALID_ARGUMENT" in caught.value.status
    with pytest.raises(InvalidInputError, match="empty"):
        sdk.camouflage(np.zeros((0, 0, 3), np.uint8))
    assert sdk.camouflage(portrait_rgb).all_camouflaged  # and the next request succeeds


def test_unreachable_server_is_reported(tmp_path):
    from serving.ports import free_port

    with CamouflageClient(f"127.0.0.1:{free_port()}", retry_for_s=1.0, backoff_s=0.1) as client:
        assert not client.is_server_ready()
        with pytest.raises(ServerUnavailableError):
            client.camouflage(np.zeros((20, 20, 3), np.uint8))
        with pytest.raises(ServerUnavailableError, match="make serve"):
            client.wait_until_ready(timeout_s=0.5)


def test_retry_succeeds_when_the_server_comes_up_late(repository, portrait_rgb):
    from serving.server import TritonServer

    late = TritonServer(repository)
    starter = threading.Timer(2.0, late.start)
    starter.start()
    try:
        with CamouflageClient(late.grpc_url, retry_for_s=120, backoff_s=0.2, timeout_s=120) as client:
            started = time.monotonic()
            result = client.camouflage(portrait_rgb)
            assert result.all_camouflaged and time.monotonic() - started > 1.5
    finally:
        starter.join()
        late.stop()


def test_embedded_engine_matches_the_server(sdk, embedded, portrait_rgb):
    frame = np.concatenate([portrait_rgb, portrait_rgb[:, ::-1]], axis=1).copy()
    served, local = sdk.camouflage(frame), embedded.camouflage(frame)
    assert [f.appearance for f in served.faces] == [f.appearance for f in local.faces]
    assert np.abs(served.frame.astype(int) - local.frame.astype(int)).max() <= 2
    # each result carries its own stage timings (no engine-wide side state); a server's carry none
    assert {"detect", "align", "identity_encoder", "generator", "paste"} <= set(local.timings)
    assert all(seconds >= 0 for seconds in local.timings.values()) and served.timings == {}


def test_client_imports_without_torch(server, portrait_rgb, tmp_path):
    """A VMS box installs no torch: the SDK must import and work with torch unavailable."""
    np.save(tmp_path / "frame.npy", portrait_rgb)
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from facecamo_client import CamouflageClient\n"
        f"c = CamouflageClient('{server.grpc_url}', timeout_s=120)\n"
        f"r = c.camouflage(np.load(r'{tmp_path / 'frame.npy'}'))\n"
        "assert r.all_camouflaged and 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": f"{ROOT}:{ROOT / 'client'}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
