"""Property-based attacks (hypothesis) on the KServe codec and the multipart/form path.

Whatever a client sends, the codec answers with the arrays it described or a 4xx ServingError
naming the field, and the face endpoints answer 200 or a 4xx: never another exception, never a
500. The form path runs the real app in process, on the session's converted MobileFaceNet.
"""

from __future__ import annotations

import asyncio
import json

import cv2
import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facezoo.faces import synthetic_face
from facezoo.serving.errors import ServingError
from facezoo.serving.kserve import KNOWN_DATATYPES, TensorSpecV2, parse_infer_request
from facezoo.serving.limits import json_depth
from serving_support import NAME, png_declaring

INPUT = TensorSpecV2("data", "FP32", (-1, 3, 4, 5))
OUTPUT = TensorSpecV2("embedding", "FP32", (-1, 8))

DIMENSION = st.one_of(st.integers(-3, 6), st.integers(-2**70, 2**70), st.sampled_from([2**31, 2**32, 2**62, 2**63]))
NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70), st.booleans(),
                   st.text(max_size=3))
JSON = st.recursive(st.one_of(st.none(), NUMBER), lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=30)


def _tensor():
    return st.fixed_dictionaries({
        "name": st.one_of(st.just("data"), st.text(max_size=5)),
        "shape": st.one_of(st.lists(DIMENSION, min_size=0, max_size=5), JSON),
        "datatype": st.one_of(st.sampled_from(KNOWN_DATATYPES), st.text(max_size=4)),
    }, optional={
        "data": st.one_of(st.lists(NUMBER, max_size=130), JSON),
        "parameters": st.one_of(st.fixed_dictionaries({"binary_data_size": st.one_of(DIMENSION, JSON)}), JSON),
    })


@settings(max_examples=400, deadline=None)
@given(document=st.one_of(st.fixed_dictionaries({"inputs": st.lists(_tensor(), max_size=3)},
                                                 optional={"outputs": JSON, "parameters": JSON, "id": JSON}),
                          JSON),
       binary=st.binary(max_size=600), header_length=st.one_of(st.none(), st.integers(-5, 2000), st.text(max_size=4)),
       nest=st.integers(0, 3000))
def test_the_codec_answers_any_request_with_arrays_or_a_4xx(document, binary, header_length, nest):
    text = json.dumps(document, allow_nan=True)
    if nest:
        text = '{"inputs": ' + "[" * nest + "]" * nest + "}"
    body = text.encode() + binary
    header = None if header_length is None else str(header_length if isinstance(header_length, int) else header_length)
    if header is not None and isinstance(header_length, int) and header_length == 0:
        header = str(len(text.encode()))
    try:
        request = parse_infer_request(body, header, [INPUT], [OUTPUT], max_rows=64)
    except ServingError as exc:
        assert 400 <= exc.status < 500, exc
        return
    array = request.inputs["data"]
    assert array.shape[1:] == (3, 4, 5) and 1 <= array.shape[0] <= 64 and np.isfinite(array).all()


@given(data=st.binary(max_size=2000))
@settings(max_examples=200, deadline=None)
def test_json_depth_is_the_nesting_a_parser_sees(data):
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return

    def depth(value) -> int:
        if isinstance(value, list):
            return 1 + max((depth(v) for v in value), default=0)
        if isinstance(value, dict):
            return 1 + max((depth(v) for v in value.values()), default=0)
        return 0

    assert json_depth(data) == depth(document)


# ----------------------------------------------------------------------------- the form path, in process


class _AppClient:
    """The app in this process, called through httpx's ASGI transport (each call on its own loop)."""

    def __init__(self, app):
        self.transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def post(self, url: str, **kwargs) -> httpx.Response:
        async def call():
            async with httpx.AsyncClient(transport=self.transport, base_url="http://facezoo.test") as client:
                return await client.post(url, **kwargs)

        return asyncio.run(call())


@pytest.fixture(scope="module")
def app_client(converted_standin):
    from facezoo.registry import load_zoo
    from facezoo.serving import BatchingOptions, ModelChoice, ServeConfig, create_app, open_model

    config = ServeConfig(batching=BatchingOptions(max_batch=8, max_queue=16), max_image_pixels=1_000_000)
    served = open_model(ModelChoice(NAME, converted_standin.converted_dir), load_zoo(converted_standin.zoo_path),
                        config.batching, 0.3)
    try:
        yield _AppClient(create_app({NAME: served}, config))
    finally:
        served.close()


def _png(seed: int, size: int) -> bytes:
    return cv2.imencode(".png", synthetic_face(seed, size=(size, size)))[1].tobytes()


def _mutated(data: bytes, cuts: list[int], flips: list[tuple[int, int]]) -> bytes:
    raw = bytearray(data)
    for position, value in flips:
        raw[position % len(raw)] = value
    for cut in cuts:
        raw = raw[: max(1, cut % len(raw))]
    return bytes(raw)


UPLOAD = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda seed, size, cuts, flips: _mutated(_png(seed, size), cuts, flips),
              st.integers(0, 50), st.sampled_from([112, 150, 1200]), st.lists(st.integers(0, 10**6), max_size=1),
              st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4)),
    st.builds(_png, st.integers(0, 50), st.just(112)),
    st.builds(png_declaring, st.integers(0, 70000), st.integers(0, 70000)),  # a header that lies about its size
)
LANDMARKS = st.one_of(st.none(), st.text(max_size=60), JSON.map(lambda value: json.dumps(value, allow_nan=True)),
                      st.builds(lambda n: json.dumps([[[30.0, 40.0]] * 5] * n), st.integers(0, 3)),
                      st.integers(1, 6000).map(lambda n: "[" * n + "]" * n))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=st.lists(UPLOAD, max_size=4), field=st.sampled_from(["images", "image", "images[]"]),
       landmarks=LANDMARKS, route=st.sampled_from(["embed", "verify"]), threshold=st.one_of(st.none(), st.text(max_size=5)))
def test_the_face_endpoints_answer_any_form_with_200_or_a_4xx(app_client, images, field, landmarks, route, threshold):
    fields = ["image1", "image2"] if route == "verify" else [field] * len(images)
    files = [(name, (f"{index}.png", data)) for index, (name, data) in enumerate(zip(fields, images))]
    form = {}
    if landmarks is not None:
        form["landmarks"] = landmarks
    if threshold is not None:
        form["threshold"] = threshold
    answer = app_client.post(f"/v1/models/{NAME}/{route}", files=files or None, data=form or None)
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    if answer.status_code != 200:
        assert "error" in answer.json()
