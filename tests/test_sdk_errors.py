# SPDX-License-Identifier: Apache-2.0
"""Every error the SDK raises is one of its own types, says what to fix in a bounded message, and converts nothing
silently: bad arguments (both engines), TLS options that cannot work, server-side model failures and malformed
answers (caused for real by small python models on a real tritonserver)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from facecamo_client import (
    CamouflageClient,
    FacecamoError,
    InvalidInputError,
    ServerError,
    ServerUnavailableError,
    TLSError,
)
from facecamo_client.grpc_client import map_error
from facecamo_client.validation import MAX_MESSAGE_CHARACTERS

from facecamo import spec








BOX = [10.0, 10.0, 120.0, 150.0]
# (keyword arguments, what the message must say): each was coerced or crashed with a non-SDK type before.
BAD_ARGUMENTS = [
    ({"appearance": 2**70}, "does not fit a 32-bit"),
    ({"appearance": 2**32 + 3}, "does not fit a 32-bit"),  # was silently entry 3
    ({"appearance": np.int64(2**40)}, "does not fit a 32-bit"),  # was silently entry 0
    ({"appearance": 1.5}, "must be integers"),  # was silently entry 1
    ({"appearance": 2.0}, "must be integers"),
    ({"appearance": "3"}, "string"),  # was silently entry 3
    ({"appearance": True}, "booleans"),
    ({"appearance": []}, "empty"),
    ({"appearance": [[1, 2]]}, "1-D"),
    ({"appearance": [0.5] * 5000}, "must be integers"),
    ({"boxes": np.zeros((2, 5))}, r"shape \[N, 4\]"),  # was ValueError
    ({"boxes": "0 0 10 10"}, "string"),  # was TypeError
    ({"boxes": [["a", "b", "c", "d"]]}, "real numbers"),
    ({"boxes": [[1, 2], [3]]}, "rectangular"),
    ({"boxes": np.full((10000, 4), np.nan)}, "NaN"),
    ({"boxes": [[0, 0, 1e39, 10]]}, "float32"),
    ({"tracks": (np.array([BOX], np.float32), None)}, "both halves"),  # was AttributeError
    ({"tracks": (np.array([BOX, BOX], np.float32), [0])}, "one entry per track"),
    ({"tracks": 5}, "pair"),
    ({"appearance": [7, 8]}, "2 entries but no boxes"),  # detected faces come back in an order unknown before the call
    ({"appearance": [7, 8], "boxes": [BOX]}, "2 entries for 1 boxes"),
]


def _call(engine, portrait: np.ndarray, kwargs: dict):
    if "tracks" in kwargs:
        return engine.submit(portrait, tracks=kwargs["tracks"]).result()
    return engine.camouflage(portrait, **kwargs)


@pytest.mark.parametrize("kwargs, message", BAD_ARGUMENTS, ids=[f"{'+'.join(a)}-{i}" for i, (a, _) in enumerate(BAD_ARGUMENTS)])
def test_bad_arguments_raise_invalid_input_with_a_bounded_message(sdk, portrait_rgb, kwargs, message):
    with pytest.raises(InvalidInputError, match=message) as caught:
        _call(sdk, portrait_rgb, kwargs)
    assert len(str(caught.value)) <= MAX_MESSAGE_CHARACTERS


def test_the_embedded_engine_refuses_the_same_arguments(embedded, portrait_rgb):
    for kwargs, message in BAD_ARGUMENTS:
        if "tracks" in kwargs:
            continue  # the embedded engine unpacks tracks itself (the lead's embedded.py)
        with pytest.raises(InvalidInputError, match=message):
            _call(embedded, portrait_rgb, kwargs)


def test_a_list_of_appearances_pairs_one_entry_with_each_given_box(embedded):
    """The issue's five-face frame: appearance=[7, 8] without boxes failed on a count the caller could not know."""
    from facecamo.align import load_rgb
    from tests.conftest import PORTRAITS

    frame = np.ascontiguousarray(np.concatenate([load_rgb(str(p)) for p in sorted(PORTRAITS.glob("congress_*.jpg"))[:5]], axis=1))
    height, width = frame.shape[:2]
    boxes = np.clip([face.box for face in embedded.camouflage(frame).faces], 0, [width, height, width, height])
    assert len(boxes) == 5
    chosen = [7, 3, 8, 1, 4]
    result = embedded.camouflage(frame, boxes=boxes[::-1], appearance=chosen)
    assert [face.appearance for face in result.faces] == chosen
    np.testing.assert_allclose([face.box for face in result.faces], boxes[::-1], atol=1e-3)
    assert [face.appearance for face in embedded.camouflage(frame, appearance=7).faces] == [7] * 5


def test_exact_values_still_pass_and_the_server_keeps_serving(sdk, portrait_rgb):
    for appearance in (3, np.int64(3), np.int32(3), [3], np.array([3], np.uint8)):
        result = sdk.camouflage(portrait_rgb, appearance=appearance)
        assert [face.appearance for face in result.faces] == [3]
    with pytest.raises(InvalidInputError, match="out of range"):  # the bank's size is the server's to check
        sdk.camouflage(portrait_rgb, appearance=2**31 - 1)
    assert sdk.camouflage(portrait_rgb).all_camouflaged


def test_bad_frames_are_refused_before_sending(sdk):
    for frame, message in ((np.zeros((20, 20, 3), np.float32), "uint8"), (np.zeros((20, 20), np.uint8), r"\[height, width, 3\]"),
                           ([[0, 0, 0]], "numpy"), (np.zeros((0, 5, 3), np.uint8), "empty")):
        with pytest.raises(InvalidInputError, match=message):
            sdk.camouflage(frame)


def test_tls_options_that_cannot_work_raise_tls_error(tmp_path):
    (tmp_path / "not_pem.crt").write_text("hello")
    (tmp_path / "fake.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    cases = [
        ({"ssl": True, "root_certificates": str(tmp_path / "absent.crt")}, "does not exist"),  # was FileNotFoundError
        ({"ssl": True, "root_certificates": str(tmp_path / "not_pem.crt")}, "not a PEM file"),
        ({"root_certificates": str(tmp_path / "fake.pem")}, "ssl=False"),
        ({"ssl": True, "private_key": str(tmp_path / "fake.pem")}, "both private_key and certificate_chain"),
    ]
    for kwargs, message in cases:
        with pytest.raises(TLSError, match=message):
            CamouflageClient("127.0.0.1:1", **kwargs)


def test_server_messages_are_mapped_by_meaning_and_bounded():
    """Failures that cannot be caused here with the current repository (an ensemble step rejecting another step's
    output), built as tritonclient's own exception."""
    from tritonclient.utils import InferenceServerException

    other_model = InferenceServerException("in ensemble 'facecamo', unexpected shape for input 'APPEARANCE' for model "
                                           "'generator'. Expected [-1,64,4,1], got [2,16,4,1]", "StatusCode.INVALID_ARGUMENT")
    assert isinstance(map_error(other_model, "facecamo"), ServerError)
    ours = InferenceServerException("unexpected datatype TYPE_FP32 for input 'FRAME' for model 'facecamo'", "StatusCode.INVALID_ARGUMENT")
    assert isinstance(map_error(ours, "facecamo"), InvalidInputError)
    huge = InferenceServerException("APPEARANCE_INDEX " + "[123456789] " * 40000 + "out of range", "StatusCode.INVALID_ARGUMENT")
    assert len(str(map_error(huge, "facecamo"))) <= 600
    restarting = InferenceServerException("Request for unknown model: 'facecamo' has no available versions", "StatusCode.NOT_FOUND")
    assert isinstance(map_error(restarting, "facecamo"), ServerUnavailableError)
    dead = InferenceServerException("Stub process 'facecamo_0_0' is not healthy.", "StatusCode.INTERNAL")
    assert isinstance(map_error(dead, "facecamo"), ServerUnavailableError)
    handshake = InferenceServerException("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls handshake "
                                         "failed (TSI_PROTOCOL_FAILURE): CERTIFICATE_VERIFY_FAILED", "StatusCode.UNAVAILABLE")
    assert isinstance(map_error(handshake, "facecamo"), TLSError)


# -- server-side failures, caused for real by small python models ---------------------------------------------------------
MODEL_PY = textwrap.dedent('''
    """Test models with the facecamo interface that fail in one way each, named by the model's name."""
    import json

    import numpy as np
    import triton_python_backend_utils as pb_utils


    class TritonPythonModel:
        def initialize(self, args):
            self.name = json.loads(args["model_config"])["name"]

        def execute(self, requests):
            responses = []
            for request in requests:
                frame = pb_utils.get_input_tensor_by_name(request, "FRAME").as_numpy()
                if self.name == "fails":
                    responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("generator: onnxruntime crashed")))
                elif self.name == "unavailable":
                    responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                        "the detector is not reachable", pb_utils.TritonError.UNAVAILABLE)))
                else:  # "inconsistent": two boxes, one status
                    outputs = {"CAMOUFLAGED_FRAME": frame, "FACE_BOXES_OUT": np.zeros((2, 4), np.float32),
                               "FACE_STATUS": np.zeros(1, np.int32), "FACE_APPEARANCE": np.zeros(2, np.int32),
                               "FACE_SOURCE": np.zeros(2, np.int32)}
                    responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in outputs.items()]))
            return responses
''')


def _config(name: str) -> str:
    def tensor(tensor_name: str, dtype: str, dims: str) -> str:
        return f'  {{ name: "{tensor_name}" data_type: {dtype} dims: {dims} }}'

    outputs = [tensor(spec.CAMOUFLAGED_FRAME, "TYPE_UINT8", "[ -1, -1, 3 ]"), tensor(spec.FACE_BOXES_OUT, "TYPE_FP32", "[ -1, 4 ]"),
               tensor(spec.FACE_STATUS, "TYPE_INT32", "[ -1 ]"), tensor(spec.FACE_APPEARANCE, "TYPE_INT32", "[ -1 ]"),
               tensor(spec.FACE_SOURCE, "TYPE_INT32", "[ -1 ]")]
    return (f'name: "{name}"\nbackend: "python"\nmax_batch_size: 0\n'
            f'input [\n{tensor(spec.FRAME, "TYPE_UINT8", "[ -1, -1, 3 ]")}\n]\noutput [\n' + ",\n".join(outputs) + "\n]\n"
            'instance_group [ { count: 1 kind: KIND_CPU } ]\n')


@pytest.fixture(scope="module")
def failing_server(tmp_path_factory):
    pytest.importorskip("pytriton", reason="nvidia-pytriton (requirements/serve.txt) provides the tritonserver binary")
    from serving.server import TritonServer

    repository = tmp_path_factory.mktemp("failing_models")
    for name in ("fails", "unavailable", "inconsistent"):
        (repository / name / "1").mkdir(parents=True)
        (repository / name / "1" / "model.py").write_text(MODEL_PY)
        (repository / name / "config.pbtxt").write_text(_config(name))
    with TritonServer(repository, supervision=None) as server:
        yield server


def test_a_model_failure_is_a_server_error_not_invalid_input(failing_server):
    frame = np.zeros((32, 32, 3), np.uint8)
    with CamouflageClient(failing_server.grpc_url, model="fails", retry_for_s=5) as client:
        with pytest.raises(ServerError, match="onnxruntime crashed") as caught:
            client.camouflage(frame)
        assert not isinstance(caught.value, InvalidInputError) and "INTERNAL" in caught.value.status
    with CamouflageClient(failing_server.grpc_url, model="inconsistent") as client:
        with pytest.raises(ServerError, match="2 face boxes"):  # was an IndexError or a silently short list
            client.camouflage(frame)
    with CamouflageClient(failing_server.grpc_url, model="unavailable", retry_for_s=1.0, backoff_s=0.1) as client:
        started = time.monotonic()
        with pytest.raises(ServerUnavailableError, match="not reachable"):  # retried for the window, then reported
            client.camouflage(frame)
        assert time.monotonic() - started < 10
    with CamouflageClient(failing_server.grpc_url, model="no_such_model", retry_for_s=5) as client:
        with pytest.raises(ServerError, match="no_such_model"):
            client.camouflage(frame)


def test_a_closed_client_raises_the_sdks_type(failing_server):
    client = CamouflageClient(failing_server.grpc_url, model="fails")
    client.close()
    with pytest.raises(FacecamoError):
        client.camouflage(np.zeros((32, 32, 3), np.uint8))


def test_a_frame_whose_answer_never_comes_is_concealed_not_waited_for_forever():
    """A server that dies mid-request may never call back: the stream gives up after answer_timeout_s and returns
    the frame concealed (the one stand-in here: a future nobody completes)."""
    from concurrent.futures import Future

    from facecamo_client.engine import CamouflageEngine

    class Silent(CamouflageEngine):
        answer_timeout_s = 0.2

        def submit(self, frame, appearance=None, boxes=None, tracks=None):
            return Future()

    frame = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    results = list(Silent().stream([frame, frame], track=False))
    assert len(results) == 2
    for result in results:
        assert result.failed and "no answer" in result.failed
        assert np.abs(result.frame.astype(int) - frame).mean() > 5, "the frame must come back concealed"


def test_the_embedded_engine_without_its_extra_names_the_pip_install():
    """`pip install .` has no OpenCV: EmbeddedEngine raised a bare ModuleNotFoundError (not one of the SDK's types)."""
    code = ("import sys; sys.modules['cv2'] = None\n"
            "from facecamo_client import EmbeddedEngine, FacecamoError, MissingExtraError\n"
            "try:\n    EmbeddedEngine('model_repository')\n"
            "except MissingExtraError as error:\n    assert isinstance(error, FacecamoError) and isinstance(error, ImportError); print(error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'OpenCV' in result.stdout and 'pip install "facecamo[embedded]"' in result.stdout
