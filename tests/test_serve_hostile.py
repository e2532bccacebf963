"""Hostile clients against a real `facezoo serve` on 127.0.0.1: each class of the #22 review.

Every attack gets a clear 4xx (or a 503 for a busy or stopping server), never a 500 with a
traceback; the server stays ready, its connection manners stay HTTP's (Connection: close when it
closes), and its memory stays where it was.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import cv2
import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from facezoo.faces import synthetic_face
from serving_support import NAME, binary_infer_body, jpeg_declaring, png_declaring, start_server

READ_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 12
MAX_QUEUE = 16


@pytest.fixture(scope="module")
def server(converted_standin, tmp_path_factory):
    log = tmp_path_factory.mktemp("hostile-log") / "serve.log"
    srv = start_server([NAME, "-c", str(converted_standin.converted_dir), "--zoo", str(converted_standin.zoo_path),
                        "--read-timeout-s", str(READ_TIMEOUT_S), "--max-pending-mb", "2", "--max-body-mb", "4",
                        "--max-connections", str(MAX_CONNECTIONS), "--max-queue", str(MAX_QUEUE)], log)
    yield srv
    assert srv.stop() == 0, srv.output()[-2000:]
    assert "Traceback" not in srv.output() and "CancelledError" not in srv.output(), srv.output()[-3000:]


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _refused(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, (response.status_code, response.text[:500])
    message = response.json()["error"]
    for word in words:
        assert word in message, message
    assert "Traceback" not in message and ".py" not in message and ".cpp" not in message, message
    return message


def _still_serving(client) -> None:
    """The same connection (keep-alive) still answers, and the server is ready."""
    assert client.get("/v2/health/ready").json() == {"ready": True}
    body, headers = binary_infer_body(np.zeros((1, 3, 112, 112), np.float32))
    assert client.post(f"/v2/models/{NAME}/infer", content=body, headers=headers).status_code == 200


def _infer(client, document) -> httpx.Response:
    return client.post(f"/v2/models/{NAME}/infer", content=json.dumps(document),
                       headers={"content-type": "application/json"})


def _peak_rss_mib(server) -> float:
    with open(f"/proc/{server.process.pid}/status", encoding="utf-8") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmHWM")) / 1024


def _raw(server, data: bytes) -> socket.socket:
    host, port = server.hostport.split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(data)
    return sock


def _answer(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# ----------------------------------------------------------------------------- 1. element counts


@pytest.mark.parametrize("shape", [[2**62, 3, 112, 112], [2**31, 2**31, 2**31, 2**31], [1, 3, 2**40, 112]])
def test_shapes_whose_element_count_overflows_are_4xx_in_json_and_binary(client, shape):
    for parameters in ({}, {"binary_data_size": 0}):
        tensor = {"name": "data", "shape": shape, "datatype": "FP32", **({"parameters": parameters} if parameters
                                                                           else {"data": [0.0]})}
        response = _infer(client, {"inputs": [tensor]})
        assert response.status_code in (400, 413), response.text
        _refused(response, response.status_code, "inputs[0]")
    _still_serving(client)


def test_a_json_body_cannot_claim_more_values_than_it_holds(client):
    _refused(_infer(client, {"inputs": [{"name": "data", "shape": [8, 3, 112, 112], "datatype": "FP32",
                                         "data": [0.0]}]}), 400, "more than a JSON body")
    _refused(_infer(client, {"inputs": [{"name": "data", "shape": [MAX_QUEUE + 1, 3, 112, 112], "datatype": "FP32",
                                         "data": [0.0]}]}), 413, "--max-queue")


# ----------------------------------------------------------------------------- 2. nesting


def test_deeply_nested_json_is_400_and_the_connection_stays_usable(client):
    deep = '{"inputs": [{"name": "data", "data": ' + "[" * 200_000 + "]" * 200_000 + "}]}"
    _refused(client.post(f"/v2/models/{NAME}/infer", content=deep), 400, "nested", "deep")
    files = {"images": ("a.png", cv2.imencode(".png", synthetic_face(1))[1].tobytes())}
    _refused(client.post(f"/v1/models/{NAME}/embed", files=files, data={"landmarks": "[" * 20_000 + "]" * 20_000}),
             400, "landmarks", "nested")
    _still_serving(client)


# ----------------------------------------------------------------------------- 3. image headers


def test_images_declaring_huge_sizes_are_refused_before_decoding(server, client):
    before = _peak_rss_mib(server)
    started = time.perf_counter()
    over_opencv = [("images", (f"big{i}.jpg", jpeg_declaring(65000, 65000))) for i in range(3)]
    _refused(client.post(f"/v1/models/{NAME}/embed", files=over_opencv), 413, "images[0]", "big0.jpg")
    under_opencv = [("images", (f"wide{i}.jpg", jpeg_declaring(30000, 30000))) for i in range(4)]
    _refused(client.post(f"/v1/models/{NAME}/embed", files=under_opencv), 413, "30000×30000", "--max-image-pixels")
    _refused(client.post(f"/v1/models/{NAME}/verify", files={"image1": ("a.png", png_declaring(20000, 20000)),
                                                             "image2": ("b.png", png_declaring(112, 112))},
                         data={"threshold": "0.3"}), 413, "image1")
    assert time.perf_counter() - started < 10  # refused from the headers, not after decoding gigapixels
    assert _peak_rss_mib(server) - before < 200, (before, _peak_rss_mib(server))
    _refused(client.post(f"/v1/models/{NAME}/embed", files={"images": ("x.jpg", b"\xff\xd8 not a jpeg")}), 400,
             "not an image")
    _still_serving(client)


# ----------------------------------------------------------------------------- 4. slow clients


def test_a_client_that_never_finishes_its_headers_gets_408(server):
    started = time.perf_counter()
    sock = _raw(server, b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n")
    answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"connection: close" in answer.lower(), answer[:300]
    assert READ_TIMEOUT_S - 0.2 < time.perf_counter() - started < READ_TIMEOUT_S + 5


def test_a_body_that_stalls_gets_408_and_is_released(server, client):
    sock = _raw(server, f"POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n".encode()
                + b'{"inputs": [')
    answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"--read-timeout-s" in answer, answer[:300]
    _still_serving(client)


def test_bodies_held_past_the_pending_bound_get_503_until_they_go(server, client):
    """--max-pending-mb 2: a stalled client holding 1.9 MB leaves no room for a 0.5 MB body."""
    held = _raw(server, f"POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n"
                .encode() + b" " * 1_900_000)
    time.sleep(0.3)
    batch = np.zeros((3, 3, 112, 112), np.float32)  # 0.6 MB
    body, headers = binary_infer_body(batch)
    busy = client.post(f"/v2/models/{NAME}/infer", content=body, headers=headers)
    _refused(busy, 503, "--max-pending-mb")
    assert busy.headers["retry-after"] == "1"
    assert _answer(held).startswith(b"HTTP/1.1 408")  # the stalled one times out and frees its bytes
    assert client.post(f"/v2/models/{NAME}/infer", content=body, headers=headers).status_code == 200


def test_connections_past_the_bound_get_503_and_are_closed(server, client):
    idle = [_raw(server, b"") for _ in range(MAX_CONNECTIONS + 2)]
    try:
        refused = [sock for sock in idle if _peek(sock).startswith(b"HTTP/1.1 503")]
        assert refused, "no connection past --max-connections was refused"
        assert b"--max-connections" in _peek(refused[0])
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    _still_serving(client)


def _peek(sock: socket.socket) -> bytes:
    sock.settimeout(0.5)
    try:
        return sock.recv(4096, socket.MSG_PEEK)
    except (socket.timeout, BlockingIOError):
        return b""
    finally:
        sock.settimeout(30)


# ----------------------------------------------------------------------------- 6. the smaller points


def test_non_finite_inputs_are_400_naming_the_field(client):
    nan = '{"inputs": [{"name": "data", "shape": [1, 3, 112, 112], "datatype": "FP32", "data": [NaN]}]}'
    _refused(client.post(f"/v2/models/{NAME}/infer", content=nan), 400, "NaN")
    batch = np.zeros((1, 3, 112, 112), np.float32)
    batch[0, 1, 2, 3] = np.inf
    body, headers = binary_infer_body(batch)
    _refused(client.post(f"/v2/models/{NAME}/infer", content=body, headers=headers), 400, "inputs[0]", "non-finite")
    big = '{"inputs": [{"name": "data", "shape": [1, 1, 1, 1], "datatype": "FP32", "data": [1e400]}]}'
    assert client.post(f"/v2/models/{NAME}/infer", content=big).status_code == 400
    files = {"images": ("a.png", cv2.imencode(".png", synthetic_face(1, size=(200, 200)))[1].tobytes())}
    _refused(client.post(f"/v1/models/{NAME}/embed", files=files,
                         data={"landmarks": json.dumps([[[1e400, 0]] * 5])}), 400, "landmarks")


def test_one_request_larger_than_the_queue_is_413_even_when_idle(client):
    files = [("images", (f"{i}.png", cv2.imencode(".png", synthetic_face(i))[1].tobytes())) for i in range(MAX_QUEUE + 1)]
    _refused(client.post(f"/v1/models/{NAME}/embed", files=files), 413, "--max-queue")
    _still_serving(client)


@pytest.mark.parametrize("path", ["/v2", "/v2/health/live", "/v2/health/ready", f"/v2/models/{NAME}",
                                  f"/v2/models/{NAME}/ready", "/v1/models", "/metrics"])
def test_head_works_where_get_does(client, path):
    head, get = client.head(path), client.get(path)
    assert head.status_code == get.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


# ----------------------------------------------------------------------------- 5xx manners and the drain


@pytest.fixture(scope="module")
def broken_server(tmp_path_factory):
    """A model that gives NaN for every input (log of a negative mean): the one 5xx left."""
    folder = tmp_path_factory.mktemp("nan-model")
    data = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 1])
    shift = helper.make_tensor("shift", TensorProto.FLOAT, [], [1000.0])
    nodes = [helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
             helper.make_node("ReduceMean", ["pooled"], ["mean"], axes=[1, 3], keepdims=0),
             helper.make_node("Sub", ["mean", "shift"], ["negative"]),
             helper.make_node("Log", ["negative"], ["embedding"])]
    graph = helper.make_graph(nodes, "nan", [data], [out], [shift])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(folder / "nan-model.onnx"))
    srv = start_server([str(folder / "nan-model.onnx")], folder / "serve.log")
    yield srv
    assert srv.stop() == 0


def test_a_5xx_says_connection_close_and_the_server_stays_ready(broken_server):
    with httpx.Client(base_url=broken_server.url, timeout=30) as http:
        body, headers = binary_infer_body(np.zeros((1, 3, 112, 112), np.float32))
        answer = http.post("/v2/models/nan-model/infer", content=body, headers=headers)
        assert answer.status_code == 500 and answer.headers["connection"] == "close"
        assert "non-finite" in answer.json()["error"] and "Traceback" not in answer.text
        assert http.get("/v2/health/ready").json() == {"ready": True}  # a new connection, opened by httpx


def test_sigterm_answers_stalled_uploads_503_at_once_and_exits_cleanly(converted_standin, tmp_path):
    srv = start_server([NAME, "-c", str(converted_standin.converted_dir), "--zoo", str(converted_standin.zoo_path),
                        "--timeout-s", "20", "--read-timeout-s", "60"], tmp_path / "serve.log")
    stalled = [_raw(srv, f"POST /v2/models/{NAME}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 90000\r\n\r\n"
                    .encode() + b'{"inputs": [') for _ in range(3)]
    time.sleep(0.3)
    started = time.perf_counter()
    srv.process.send_signal(signal.SIGTERM)
    answers = [_answer(sock) for sock in stalled]
    shed = time.perf_counter() - started
    assert all(a.startswith(b"HTTP/1.1 503") and b"connection: close" in a.lower() and b"retry-after" in a.lower()
               for a in answers), answers
    assert shed < 5, shed  # not held until the drain's end (--timeout-s 20 + 5)
    assert srv.process.wait(30) == 0
    log = srv.output()
    assert "Traceback" not in log and "CancelledError" not in log and "Internal Server Error" not in log, log[-3000:]
    assert not os.path.exists(f"/proc/{srv.process.pid}")
