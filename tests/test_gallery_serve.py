"""`facezoo serve --gallery G`: a real server on 127.0.0.1 with a folder gallery, driven by httpx."""

from __future__ import annotations

import cv2
import httpx
import pytest
from typer.testing import CliRunner

from facezoo.cli.main import app
from facezoo.faces import synthetic_face
from facezoo.gallery import Gallery
from serving_support import NAME, start_server

runner = CliRunner()


def _png(identity: int, variation: int = 0) -> bytes:
    ok, data = cv2.imencode(".png", synthetic_face(identity, variation))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def gallery_server(converted_standin, tmp_path_factory):
    root = tmp_path_factory.mktemp("served-gallery")
    folder = root / "staff"
    made = runner.invoke(app, ["gallery", "create", str(folder), "--model", NAME, "-c",
                               str(converted_standin.converted_dir), "--threshold", "0.999"])
    assert made.exit_code == 0, made.output
    server = start_server([NAME, "-c", str(converted_standin.converted_dir), "--zoo", str(converted_standin.zoo_path),
                           "--gallery", str(folder)], root / "serve.log")
    yield server, folder
    assert server.stop() == 0, server.output()[-2000:]


@pytest.fixture(scope="module")
def client(gallery_server):
    server, _ = gallery_server
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def _enroll(client, identity: str, *images: bytes) -> httpx.Response:
    files = [("images", (f"{identity}-{k}.png", data, "image/png")) for k, data in enumerate(images)]
    return client.post("/v1/galleries/staff/identities", data={"identity": identity}, files=files)


def test_enroll_identify_remove_over_http(client, gallery_server):
    empty = client.post("/v1/galleries/staff/identify", files=[("images", ("q.png", _png(1), "image/png"))])
    assert empty.status_code == 409 and "is empty" in empty.json()["error"]

    for k, name in enumerate(["ana", "ben", "cleo"]):
        answer = _enroll(client, name, _png(20 + k, 0), _png(20 + k, 1))
        assert answer.status_code == 200, answer.text
        assert answer.json()["added"] == 2 and answer.json()["faces"] == 2

    files = [("images", ("a.png", _png(21, 1), "image/png")), ("images", ("x.png", _png(77, 0), "image/png"))]
    found = client.post("/v1/galleries/staff/identify", params={"top_k": 2}, files=files)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["threshold"] == 0.999 and body["threshold_source"] == "gallery" and body["top_k"] == 2
    [ben, stranger] = body["results"]
    assert ben["path"] == "a.png" and ben["field"] == "images[0]" and ben["face"] == 0 and ben["identity"] == "ben" and ben["cosine"] > 0.999
    assert stranger["identity"] is None and len(stranger["candidates"]) == 2
    lenient = client.post("/v1/galleries/staff/identify", params={"threshold": "-1"}, files=files[1:])
    assert lenient.json()["results"][0]["identity"] == lenient.json()["results"][0]["candidates"][0]["identity"]

    duplicate = _enroll(client, "dana", _png(20, 0))
    assert duplicate.status_code == 409 and "already enrolled as 'ana'" in duplicate.json()["error"]

    described = client.get("/v1/galleries/staff").json()
    assert described["model"] == NAME and described["identities_total"] == 3 and described["faces_total"] == 6
    assert client.get("/v1/galleries").json()["galleries"][0]["name"] == "staff"

    removed = client.delete("/v1/galleries/staff/identities/ben")
    assert removed.status_code == 200 and removed.json()["removed"] == 2
    again = client.delete("/v1/galleries/staff/identities/ben")
    assert again.status_code == 404 and "no identity 'ben'" in again.json()["error"]
    after = client.post("/v1/galleries/staff/identify", files=files[:1]).json()["results"][0]
    assert "ben" not in [c["identity"] for c in after["candidates"]]

    _, folder = gallery_server
    with Gallery.open(folder) as reopened:  # another process sees what the server committed
        assert reopened.identities() == {"ana": 2, "cleo": 2}


def test_gallery_refusals_over_http(client):
    one = [("images", ("q.png", _png(1), "image/png"))]
    assert client.post("/v1/galleries/nobody/identify", files=one).status_code == 404
    assert client.post("/v1/galleries/staff/identify", params={"top_k": "0"}, files=one).status_code == 400
    assert client.post("/v1/galleries/staff/identify", params={"threshold": "2"}, files=one).status_code == 400
    assert client.post("/v1/galleries/staff/identify", files=[]).status_code == 400
    bad = client.post("/v1/galleries/staff/identify", files=[("images", ("q.png", b"not an image", "image/png"))])
    assert bad.status_code == 400 and "images[0]" in bad.json()["error"]
    nameless = client.post("/v1/galleries/staff/identities", files=one)
    assert nameless.status_code == 400 and "identity" in nameless.json()["error"]
    slash = _enroll(client, "a/b", _png(3))
    assert slash.status_code == 400 and "identity 'a/b'" in slash.json()["error"]
    twice = _enroll(client, "twins", _png(4), _png(4))
    assert twice.status_code == 400 and "the same image as images[0]" in twice.json()["error"]
    assert client.get("/v1/galleries/staff", params={"limit": -1}).status_code == 400


def test_a_gallery_of_another_model_is_refused_at_start(converted_standin, tmp_path):
    from facezoo.gallery import ModelIdentity

    Gallery.create(tmp_path / "other", ModelIdentity("arcface", {}, "FP32", 512)).close()
    result = runner.invoke(app, ["serve", NAME, "-c", str(converted_standin.converted_dir), "--zoo",
                                 str(converted_standin.zoo_path), "--gallery", str(tmp_path / "other"), "--port", "0"])
    assert result.exit_code == 1 and "holds embeddings of arcface, which this server does not serve" in result.output
