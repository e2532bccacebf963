"""`facezoo serve` end to end: a real server in a subprocess, real httpx and tritonclient clients."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import threading
import time

import cv2
import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from facezoo.faces import probe_images, synthetic_face
from facezoo.preprocessing import template
from facezoo.runtime import Embedder, load
from serving_support import NAME, binary_infer_body, facezoo_command, read_binary_response, start_server

ONNX_NAME = "mfn-onnx"  # the ONNX file served by path: named after its stem


@pytest.fixture(scope="module")
def artifacts(converted_standin, tmp_path_factory):
    folder = converted_standin.converted_dir / NAME / "FP32"
    copy = tmp_path_factory.mktemp("served-files") / f"{ONNX_NAME}.onnx"
    shutil.copy(folder / f"{NAME}.onnx", copy)  # no model card beside it: specs from the file
    return {"xml": folder / f"{NAME}.xml", "onnx": copy}


@pytest.fixture(scope="module")
def server(converted_standin, artifacts, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    srv = start_server([NAME, str(artifacts["onnx"]), "-c", str(converted_standin.converted_dir),
                        "--zoo", str(converted_standin.zoo_path), "--max-body-mb", "4"], log)
    yield srv
    assert srv.stop() == 0, srv.output()[-2000:]


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def _inputs(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, 3, 112, 112)).astype(np.float32)


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def _error(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    message = response.json()["error"]
    for word in words:
        assert word in message, message
    return message


def _facezoo_infer(tmp_path, model: str, batch: np.ndarray, converted_standin) -> np.ndarray:
    """What `facezoo infer` gives for the same tensors: the reference every served row must equal."""
    np.save(tmp_path / "in.npy", batch)
    subprocess.run(facezoo_command("infer", model, "-c", str(converted_standin.converted_dir), "--input",
                                   str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy")),
                   check=True, capture_output=True, timeout=120)
    return np.load(tmp_path / "out.npy")


def _close(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


def test_health_metadata_and_model_names(client):
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get(f"/v2/models/{NAME}").json()
    assert meta["name"] == NAME and meta["platform"] == "openvino_xml" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "data", "datatype": "FP32", "shape": [-1, 3, 112, 112]}]
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 512]}]
    onnx = client.get(f"/v2/models/{ONNX_NAME}/versions/1").json()
    assert onnx["platform"] == "onnxruntime_onnx" and onnx["inputs"][0]["name"] == "data"
    assert client.get(f"/v2/models/{NAME}/ready").json() == {"name": NAME, "ready": True}
    assert [m["name"] for m in client.get("/v1/models").json()["models"]] == [NAME, ONNX_NAME]


def test_json_and_binary_infer_with_httpx_equal_facezoo_infer(client, converted_standin, tmp_path):
    batch = _inputs(3, seed=1)
    expected = _facezoo_infer(tmp_path, NAME, batch, converted_standin)
    request = {"id": "r1", "inputs": [{"name": "data", "shape": [3, 3, 112, 112], "datatype": "FP32",
                                       "data": batch.ravel().tolist()}]}
    answer = client.post(f"/v2/models/{NAME}/infer", json=request)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    output = answer.json()
    assert output["model_name"] == NAME and output["id"] == "r1"
    assert output["outputs"][0]["name"] == "embedding" and output["outputs"][0]["shape"] == [3, 512]
    _close(np.asarray(output["outputs"][0]["data"], np.float32).reshape(3, 512), expected)
    nested = {"inputs": [{"name": "data", "shape": [3, 3, 112, 112], "datatype": "FP32", "data": batch.tolist()}]}
    _close(np.asarray(client.post(f"/v2/models/{NAME}/infer", json=nested).json()["outputs"][0]["data"]).reshape(3, 512),
           expected)
    body, headers = binary_infer_body(batch)
    header, rows = read_binary_response(client.post(f"/v2/models/{NAME}/infer", content=body, headers=headers))
    assert header["outputs"][0]["datatype"] == "FP32"
    _close(rows, expected)


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_binary_and_json(server, converted_standin, tmp_path, binary):
    batch = _inputs(2, seed=2)
    expected = _facezoo_infer(tmp_path, NAME, batch, converted_standin)
    client = triton.InferenceServerClient(server.hostport)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(NAME)
    assert client.get_model_metadata(NAME)["inputs"][0]["shape"] == [-1, 3, 112, 112]
    tensor = triton.InferInput("data", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    result = client.infer(NAME, [tensor], outputs=[triton.InferRequestedOutput("embedding", binary_data=binary)])
    _close(result.as_numpy("embedding"), expected)
    default = client.infer(NAME, [tensor], request_compression_algorithm="gzip")  # binary out, gzip body in
    _close(default.as_numpy("embedding"), expected)
    with pytest.raises(InferenceServerException, match="inputs\\[0\\].shape"):
        wrong = triton.InferInput("data", [1, 3, 112, 96], "FP32")
        wrong.set_data_from_numpy(batch[:, :, :, :96].copy()[:1], binary_data=binary)
        client.infer(NAME, [wrong])
    client.close()


def test_model_served_from_an_onnx_file_runs_onnxruntime(client, artifacts, tmp_path, converted_standin):
    batch = _inputs(2, seed=3)
    expected = _facezoo_infer(tmp_path, str(artifacts["onnx"]), batch, converted_standin)
    body, headers = binary_infer_body(batch)
    _close(read_binary_response(client.post(f"/v2/models/{ONNX_NAME}/infer", content=body, headers=headers))[1],
           expected)


MALFORMED = [
    ("not json", b"{inputs", {}, "body: not valid JSON"),
    ("not an object", b"[1, 2]", {}, "body: expected a JSON object"),
    ("no inputs", b'{"id": "x"}', {}, "inputs: expected a non-empty list"),
    ("input not an object", b'{"inputs": [7]}', {}, "inputs[0]: expected an object"),
    ("unknown input", {"name": "image", "shape": [1, 3, 112, 112], "datatype": "FP32", "data": [0]}, {}, "inputs[0].name"),
    ("unknown datatype", {"name": "data", "shape": [1, 3, 112, 112], "datatype": "FLOAT", "data": [0]}, {}, "inputs[0].datatype"),
    ("wrong datatype", {"name": "data", "shape": [1, 3, 112, 112], "datatype": "FP64", "data": [0]}, {}, "inputs[0].datatype"),
    ("wrong size", {"name": "data", "shape": [1, 3, 112, 111], "datatype": "FP32", "data": [0]}, {}, "inputs[0].shape"),
    ("wrong rank", {"name": "data", "shape": [3, 112, 112], "datatype": "FP32", "data": [0]}, {}, "inputs[0].shape"),
    ("zero batch", {"name": "data", "shape": [0, 3, 112, 112], "datatype": "FP32", "data": []}, {}, "inputs[0].shape"),
    ("shape not ints", {"name": "data", "shape": [1, 3, "112", 112], "datatype": "FP32", "data": [0]}, {}, "inputs[0].shape"),
    ("too few values", {"name": "data", "shape": [1, 3, 112, 112], "datatype": "FP32", "data": [0, 1]}, {},
     "inputs[0].shape: [1, 3, 112, 112] takes 37632 values, more than a JSON body"),
    ("values not numbers", {"name": "data", "shape": [1, 1, 1, 1], "datatype": "FP32", "data": ["a"]}, {}, "inputs[0]"),
    ("no data", {"name": "data", "shape": [1, 3, 112, 112], "datatype": "FP32"}, {}, "inputs[0].data: missing"),
]


@pytest.mark.parametrize("case, payload, headers, field", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_json_requests_are_400_naming_the_field(client, case, payload, headers, field):
    body = payload if isinstance(payload, bytes) else json.dumps({"inputs": [payload]}).encode()
    _error(client.post(f"/v2/models/{NAME}/infer", content=body, headers=headers), 400, field)


def test_malformed_binary_requests_are_400(client):
    batch = _inputs(1, seed=4)
    body, headers = binary_infer_body(batch)
    url = f"/v2/models/{NAME}/infer"
    _error(client.post(url, content=body[:-4], headers=headers), 400, "binary_data_size")
    _error(client.post(url, content=body + b"1234", headers=headers), 400, "belong to no input")
    _error(client.post(url, content=body, headers={**headers, "Inference-Header-Content-Length": "x"}), 400,
           "Inference-Header-Content-Length")
    _error(client.post(url, content=body, headers={**headers, "Inference-Header-Content-Length": str(len(body) + 1)}),
           400, "Inference-Header-Content-Length")
    header = json.loads(body[:int(headers["Inference-Header-Content-Length"])])
    header["inputs"][0]["parameters"]["binary_data_size"] = 12
    text = json.dumps(header).encode()
    _error(client.post(url, content=text + body[-12:], headers={"Inference-Header-Content-Length": str(len(text))}),
           400, "inputs[0].parameters.binary_data_size")
    header["inputs"][0]["parameters"]["binary_data_size"] = batch.nbytes
    header["outputs"] = [{"name": "features"}]
    text = json.dumps(header).encode()
    _error(client.post(url, content=text + batch.tobytes(), headers={"Inference-Header-Content-Length": str(len(text))}),
           400, "outputs[0].name")
    _error(client.post(url, content=b"\x00\x01junk", headers={"Content-Encoding": "gzip"}), 400, "Content-Encoding")


def test_body_over_the_limit_is_413_and_unknown_models_404(client):
    too_big = b"0" * (5 << 20)  # --max-body-mb 4
    _error(client.post(f"/v2/models/{NAME}/infer", content=too_big), 413, "--max-body-mb")
    _error(client.post(f"/v2/models/{NAME}/infer", content=gzip.compress(too_big), headers={"Content-Encoding": "gzip"}),
           413, "decompressed")
    _error(client.get("/v2/models/nope"), 404, "unknown model 'nope'", NAME)
    _error(client.get("/v2/models/nope/ready"), 404, "nope")
    _error(client.post("/v2/models/nope/infer", json={}), 404, "nope")
    _error(client.get(f"/v2/models/{NAME}/versions/2"), 404, "no version '2'")
    _error(client.post("/v1/models/nope/embed", files={"images": ("a.png", b"x")}), 404, "nope")
    _error(client.get("/v3/whatever"), 404)
    assert client.get("/v2/health/ready").status_code == 200


def test_embed_aligned_crops_equal_the_in_process_embedder(client, artifacts):
    crops = probe_images(3, (112, 112))
    files = [("images", (f"face{i}.png", _png(crop), "image/png")) for i, crop in enumerate(crops)]
    answer = client.post(f"/v1/models/{NAME}/embed", files=files)
    assert answer.status_code == 200, answer.text
    got = np.asarray(answer.json()["embeddings"], np.float32)
    assert answer.json()["dimension"] == 512 and got.shape == (3, 512)
    with load(artifacts["xml"]) as model:
        expected = Embedder(model).embed(crops)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def _raw_photo(identity: int) -> tuple[np.ndarray, np.ndarray]:
    """A 250×250 photo with the face turned 12° and scaled 1.6×, and its 5 landmarks."""
    crop = synthetic_face(identity)
    matrix = cv2.getRotationMatrix2D((56, 56), 12, 1.6)
    matrix[:, 2] += (69, 69)
    photo = cv2.warpAffine(crop, matrix, (250, 250), borderValue=(90, 90, 90))
    points = np.hstack([template((112, 112)), np.ones((5, 1))]) @ matrix.T
    return photo, points


def test_raw_photos_are_refused_unless_landmarks_align_them(client, artifacts):
    photo, points = _raw_photo(5)
    files = [("images", ("photo.jpg", _png(photo), "image/png"))]
    _error(client.post(f"/v1/models/{NAME}/embed", files=files), 400, "images[0] ('photo.jpg')",
           "not an aligned face crop", "landmarks")
    answer = client.post(f"/v1/models/{NAME}/embed", files=files, data={"landmarks": json.dumps([points.tolist()])})
    assert answer.status_code == 200, answer.text
    with load(artifacts["xml"]) as model:
        expected = Embedder(model).embed([photo], landmarks=points[None])
        aligned = Embedder(model).embed([synthetic_face(5)])
    np.testing.assert_allclose(np.asarray(answer.json()["embeddings"]), expected, atol=1e-4)
    assert float(expected[0] @ aligned[0]) > 0.9  # the alignment undid the turn and the scale


def test_embed_input_errors_are_400_naming_the_field(client):
    url = f"/v1/models/{NAME}/embed"
    crop = _png(synthetic_face(1))
    _error(client.post(url, json={"images": []}), 400, "Content-Type", "multipart/form-data")
    _error(client.post(url, files={"other": ("a.png", crop)}), 400, "images: no image files")
    _error(client.post(url, files={"images": ("broken.jpg", b"\xff\xd8 not a jpeg")}), 400, "images[0] ('broken.jpg')",
           "not an image")
    _error(client.post(url, files={"images": ("empty.png", b"")}), 400, "images[0]", "empty file")
    _error(client.post(url, files={"images": ("a.png", crop)}, data={"landmarks": "[[1, 2]]"}), 400, "landmarks",
           "(1, 5, 2)")
    _error(client.post(url, files={"images": ("a.png", crop)}, data={"landmarks": "{oops"}), 400, "landmarks", "JSON")
    _error(client.post(url, content=b"--x\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=x"}), 400)


def test_verify_decides_at_the_requested_threshold(client, artifacts):
    same = [("image1", ("a.png", _png(synthetic_face(3, 0)))), ("image2", ("b.png", _png(synthetic_face(3, 1))))]
    other = [("image1", ("a.png", _png(synthetic_face(3, 0)))), ("image2", ("c.png", _png(synthetic_face(9, 0))))]
    url = f"/v1/models/{NAME}/verify"
    _error(client.post(url, files=same), 400, "threshold", "verification_threshold", "--threshold")
    answer = client.post(url, files=same, params={"threshold": "0.3"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    with load(artifacts["xml"]) as model:
        a, b = Embedder(model).embed([synthetic_face(3, 0), synthetic_face(3, 1)])
    assert result["cosine"] == pytest.approx(float(a @ b), abs=1e-4)
    assert result["threshold"] == 0.3 and result["threshold_source"] == "request"
    assert result["same_person"] == (result["cosine"] >= 0.3)
    above = client.post(url, files=other, data={"threshold": str(result["cosine"] + 0.01)}).json()
    assert above["same_person"] is (above["cosine"] >= above["threshold"])
    _error(client.post(url, files=same, params={"threshold": "2"}), 400, "threshold", "[-1, 1]")
    _error(client.post(url, files=same, params={"threshold": "high"}), 400, "threshold: expected a number")
    _error(client.post(url, files=same[:1], params={"threshold": "0.3"}), 400, "image2: expected exactly one")


def test_concurrent_requests_are_batched_and_each_gets_its_own_rows(client, server, converted_standin, tmp_path):
    threads, per_thread = 8, 25
    inputs = _inputs(threads * per_thread, seed=7)
    expected = _facezoo_infer(tmp_path, NAME, inputs, converted_standin)
    results: dict[int, np.ndarray] = {}
    failures: list[str] = []

    def worker(first: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for index in range(first, first + per_thread):
                body, headers = binary_infer_body(inputs[index:index + 1])
                response = http.post(f"/v2/models/{NAME}/infer", content=body, headers=headers)
                if response.status_code != 200:
                    failures.append(f"{index}: {response.status_code} {response.text[:200]}")
                    continue
                results[index] = read_binary_response(response)[1][0]

    before = _metric(client, "facezoo_batch_size_count")
    pool = [threading.Thread(target=worker, args=(t * per_thread,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    assert not failures, failures[:5]
    assert sorted(results) == list(range(len(inputs)))
    _close(np.stack([results[i] for i in range(len(inputs))]), expected)
    batches = _metric(client, "facezoo_batch_size_count") - before
    assert batches < len(inputs), "concurrent requests were never batched together"


def test_tritonclient_async_requests_in_flight(server, converted_standin, tmp_path):
    inputs = _inputs(24, seed=8)
    expected = _facezoo_infer(tmp_path, NAME, inputs, converted_standin)
    client = triton.InferenceServerClient(server.hostport, concurrency=8)
    pending = []
    for index in range(len(inputs)):
        tensor = triton.InferInput("data", [1, 3, 112, 112], "FP32")
        tensor.set_data_from_numpy(inputs[index:index + 1])
        pending.append(client.async_infer(NAME, [tensor]))
    rows = np.concatenate([request.get_result(timeout=60).as_numpy("embedding") for request in pending])
    client.close()
    _close(rows, expected)


def _metric(client, name: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_and_health_after_every_bad_request(client, server):
    """Self-contained: under xdist the other requests may have run on another worker's server."""
    url = f"/v2/models/{NAME}/infer"
    body, headers = binary_infer_body(_inputs(1, seed=12))
    assert client.post(url, content=body, headers=headers).status_code == 200
    _error(client.post(url, content=body[:-4], headers=headers), 400, "binary_data_size")
    text = client.get("/metrics").text
    assert 'facezoo_requests_total{code="400",route="/v2/models/{name}/infer"}' in text
    assert 'facezoo_requests_total{code="200",route="/v2/models/{name}/infer"}' in text
    assert "facezoo_request_duration_seconds_bucket" in text and "facezoo_batch_size_bucket" in text
    assert f'facezoo_admitted_images{{model="{NAME}"}} 0.0' in text
    assert client.get("/v2/health/ready").status_code == 200 and server.process.poll() is None


def test_overload_and_timeout_answer_503_and_the_server_stays_up(converted_standin, tmp_path):
    server = start_server([NAME, "-c", str(converted_standin.converted_dir), "--zoo", str(converted_standin.zoo_path),
                           "--max-queue", "2", "--max-delay-ms", "3000", "--timeout-s", "1"], tmp_path / "serve.log")
    try:
        results = {}

        def waiting() -> None:  # 1 image, waits for the 3 s batching delay: times out at 1 s
            body, headers = binary_infer_body(_inputs(1, seed=9))
            results["first"] = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body, headers=headers,
                                          timeout=30)

        thread = threading.Thread(target=waiting)
        start = time.monotonic()
        thread.start()
        time.sleep(0.4)
        body, headers = binary_infer_body(_inputs(2, seed=10))  # 1 + 2 images > --max-queue 2
        overloaded = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body, headers=headers, timeout=30)
        _error(overloaded, 503, "overloaded", "--max-queue 2")
        assert overloaded.headers["retry-after"] == "1"
        thread.join(30)
        _error(results["first"], 503, "no result within 1 s")
        assert time.monotonic() - start < 2.9  # it did not wait for the batch
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
        body, headers = binary_infer_body(_inputs(2, seed=11))  # the queue is free again
        thread = threading.Thread(target=lambda: results.update(
            later=httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body, headers=headers, timeout=30)))
        thread.start()
        thread.join(30)
        _error(results["later"], 503, "no result within")  # admitted (not overloaded), then timed out
    finally:
        assert server.stop() == 0


def test_sigterm_drains_requests_in_flight_then_stops(converted_standin, tmp_path):
    server = start_server([NAME, "-c", str(converted_standin.converted_dir), "--zoo", str(converted_standin.zoo_path),
                           "--max-delay-ms", "1500", "--max-batch", "64"], tmp_path / "serve.log")
    inputs = _inputs(4, seed=12)
    expected = _facezoo_infer(tmp_path, NAME, inputs, converted_standin)
    answers: dict[int, httpx.Response] = {}

    def request(index: int) -> None:
        body, headers = binary_infer_body(inputs[index:index + 1])
        answers[index] = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body, headers=headers, timeout=30)

    pool = [threading.Thread(target=request, args=(i,)) for i in range(4)]
    for thread in pool:
        thread.start()
    time.sleep(0.6)  # all four are waiting in the 1.5 s batch
    server.process.send_signal(15)
    for thread in pool:
        thread.join(30)
    assert server.process.wait(30) == 0, server.output()[-2000:]
    assert [answers[i].status_code for i in range(4)] == [200] * 4
    _close(np.stack([read_binary_response(answers[i])[1][0] for i in range(4)]), expected)
    assert "stopped" in server.output()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/v2/health/live", timeout=2)


def test_a_mindir_is_served_through_mindspore(converted_standin, tmp_path):
    server = start_server([NAME, "-c", str(converted_standin.converted_dir), "--zoo", str(converted_standin.zoo_path),
                           "--format", "mindir"], tmp_path / "serve.log")
    try:
        batch = _inputs(2, seed=13)
        mindir = converted_standin.converted_dir / NAME / "FP32" / f"{NAME}.mindir"
        expected = _facezoo_infer(tmp_path, str(mindir), batch, converted_standin)
        meta = httpx.get(f"{server.url}/v2/models/{NAME}").json()
        assert meta["platform"] == "mindspore_mindir"
        body, headers = binary_infer_body(batch)
        answer = httpx.post(f"{server.url}/v2/models/{NAME}/infer", content=body, headers=headers, timeout=60)
        _close(read_binary_response(answer)[1], expected)
    finally:
        assert server.stop() == 0
