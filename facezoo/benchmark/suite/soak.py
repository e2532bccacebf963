"""The hostile soak: good and hostile requests mixed, from 16 clients, against `facezoo serve` on 127.0.0.1.

Bounded in time and in count (one request in flight per client). Every answer is counted by the
kind of request and its status; the target is no 5xx at all, every hostile request refused with
the 4xx meant for it, and the server's resident memory flat (sampled from /proc while it runs).
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facezoo.benchmark.suite.deploy import serve_in_child, stop_child, wait_ready

RSS_GROWTH_LIMIT_MIB = 64.0  # what "flat" allows between the first and the last quarter of the soak
READ_TIMEOUT_S = 1.0


@dataclass
class SoakFigure:
    model: str
    clients: int
    seconds: float
    requests: int
    statuses: dict[str, dict[str, int]]  # kind -> status -> count
    unexpected: dict[str, int]  # kind -> answers other than the kind's expected status
    five_xx: int
    rss_start_mib: float  # the first quarter's mean, after a warm-up of the same mix
    rss_end_mib: float  # the last quarter's mean
    rss_peak_mib: float  # VmHWM: the server's peak over its whole life
    shed_ms: list[float] = field(default_factory=list)  # stalled clients: last byte sent → 408 received
    good_p50_ms: float = 0.0

    @property
    def rss_growth_mib(self) -> float:
        return self.rss_end_mib - self.rss_start_mib

    @property
    def met(self) -> bool:
        return self.five_xx == 0 and not self.unexpected and self.rss_growth_mib <= RSS_GROWTH_LIMIT_MIB


def _png(seed: int) -> bytes:
    from facezoo.faces import synthetic_face

    return cv2.imencode(".png", synthetic_face(seed))[1].tobytes()


def _huge_jpeg() -> bytes:
    from facezoo.faces import synthetic_face

    data = bytearray(cv2.imencode(".jpg", synthetic_face(1, size=(16, 16)))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 30000, 30000)
    return bytes(data)


def _multipart(files: list[tuple[str, str, bytes]], fields: dict[str, str] | None = None) -> tuple[bytes, dict]:
    boundary = "facezoo-soak-boundary"
    parts = []
    for name, filename, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _requests(model: str) -> dict[str, tuple[str, str, bytes, dict, int]]:
    """kind -> (method, path, body, headers, the status it must get)."""
    infer = f"/v2/models/{model}/infer"
    batch = np.random.default_rng(0).uniform(0, 255, (1, 3, 112, 112)).astype(np.float32)
    header = json.dumps({"inputs": [{"name": "data", "shape": [1, 3, 112, 112], "datatype": "FP32",
                                     "parameters": {"binary_data_size": batch.nbytes}}]}).encode()
    binary = {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}
    as_json = {"Content-Type": "application/json"}

    def tensor(shape, **rest) -> bytes:
        return json.dumps({"inputs": [{"name": "data", "shape": shape, "datatype": "FP32", **rest}]}).encode()

    embed, embed_headers = _multipart([("images", "face.png", _png(3))])
    huge, huge_headers = _multipart([("images", f"big{i}.jpg", _huge_jpeg()) for i in range(3)])
    deep_marks, deep_headers = _multipart([("images", "face.png", _png(4))], {"landmarks": "[" * 5000 + "]" * 5000})
    return {
        "good: binary infer": ("POST", infer, header + batch.tobytes(), binary, 200),
        "good: JSON infer": ("POST", infer, tensor([1, 3, 112, 112], data=batch.ravel().tolist()), as_json, 200),
        "good: embed": ("POST", f"/v1/models/{model}/embed", embed, embed_headers, 200),
        "good: HEAD ready": ("HEAD", "/v2/health/ready", b"", {}, 200),
        "hostile: overflowing shape": ("POST", infer, tensor([2**62, 3, 112, 112], data=[0.0]), as_json, 413),
        "hostile: wrapping binary shape": ("POST", infer, tensor([1, 3, 2**40, 2**40],
                                                                 parameters={"binary_data_size": 16}) + bytes(16),
                                           {**binary, "Inference-Header-Content-Length": str(
                                               len(tensor([1, 3, 2**40, 2**40], parameters={"binary_data_size": 16})))},
                                           400),
        "hostile: nested JSON": ("POST", infer, b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", as_json, 400),
        "hostile: NaN": ("POST", infer, b'{"inputs":[{"name":"data","shape":[1,3,112,112],"datatype":"FP32",'
                                       b'"data":[NaN]}]}', as_json, 400),
        "hostile: 30000x30000 JPEGs": ("POST", f"/v1/models/{model}/embed", huge, huge_headers, 413),
        "hostile: nested landmarks": ("POST", f"/v1/models/{model}/embed", deep_marks, deep_headers, 400),
    }


SLOW = {"hostile: stalled body": 408, "hostile: half headers": 408}


def _slow(host: str, port: int, model: str, kind: str) -> tuple[int, float]:
    """A client that stops sending: the status it gets, and how long after its last byte."""
    if kind == "hostile: stalled body":
        data = (f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: soak\r\nContent-Length: 40000\r\n\r\n"
                .encode() + b'{"inputs": [')
    else:
        data = b"GET /v2/health/ready HTTP/1.1\r\nHost: soak\r\n"
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.sendall(data)
        sent = time.perf_counter()
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, (time.perf_counter() - sent) * 1e3


def _rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field_name)) / 1024


def measure_soak(path: str, model: str, workdir: str, clients: int = 16, seconds: float = 20.0,
                 warmup: float | None = None) -> dict:
    """Serve ``path``, soak it with ``clients`` threads for ``warmup`` (default a quarter of
    ``seconds``, not counted) and then ``seconds``, and stop it with SIGTERM."""
    log = Path(workdir) / "soak-serve.log"
    server = serve_in_child(path, log, "--read-timeout-s", str(READ_TIMEOUT_S))
    try:
        host, port = wait_ready(server, log)
        name = Path(path).stem
        requests = _requests(name)
        kinds = [*requests, *SLOW]
        statuses: dict[str, Counter] = {kind: Counter() for kind in kinds}
        shed, good = [], []
        lock = threading.Lock()
        rss: list[float] = []
        begin_at = time.perf_counter() + (seconds / 4 if warmup is None else warmup)
        stop = begin_at + seconds

        def sample() -> None:
            while time.perf_counter() < stop:
                if time.perf_counter() >= begin_at:
                    rss.append(_rss_mib(server.pid))
                time.sleep(0.25)

        def client(index: int) -> None:
            connection = http.client.HTTPConnection(host, port, timeout=60)
            turn = index
            while time.perf_counter() < stop:
                kind = kinds[turn % len(kinds)]
                turn += 1
                begin = time.perf_counter()
                if kind in SLOW:
                    status, waited = _slow(host, port, name, kind)
                else:
                    status, connection = _send(connection, host, port, requests[kind])
                if begin < begin_at:
                    continue  # the warm-up: the same mix, not counted
                with lock:
                    statuses[kind][status] += 1
                    if kind in SLOW:
                        shed.append(waited)
                    elif kind.startswith("good") and status == 200:
                        good.append(time.perf_counter() - begin)
            connection.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        threads.append(threading.Thread(target=sample))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        peak = _rss_mib(server.pid, "VmHWM")
    finally:
        stop_child(server)
    expected = {**{kind: request[4] for kind, request in requests.items()}, **SLOW}
    quarter = max(len(rss) // 4, 1)
    figure = SoakFigure(
        model=model, clients=clients, seconds=seconds, requests=sum(sum(c.values()) for c in statuses.values()),
        statuses={kind: {str(status): count for status, count in sorted(c.items())} for kind, c in statuses.items()},
        unexpected={kind: sum(n for status, n in c.items() if status != expected[kind])
                    for kind, c in statuses.items() if any(status != expected[kind] for status in c)},
        five_xx=sum(n for c in statuses.values() for status, n in c.items() if status >= 500),
        rss_start_mib=float(np.mean(rss[:quarter])) if rss else 0.0, rss_end_mib=float(np.mean(rss[-quarter:])) if rss else 0.0,
        rss_peak_mib=peak, shed_ms=shed, good_p50_ms=float(np.percentile(np.asarray(good) * 1e3, 50)) if good else 0.0)
    return {**asdict(figure), "rss_growth_mib": figure.rss_growth_mib, "met": figure.met,
            "log_clean": "Traceback" not in log.read_text(errors="replace")}


def _send(connection, host: str, port: int, request) -> tuple[int, http.client.HTTPConnection]:
    method, path, body, headers, _ = request
    try:
        connection.request(method, path, body or None, headers)
        response = connection.getresponse()
        response.read()
        if response.getheader("connection", "").lower() == "close":
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=60)
        return response.status, connection
    except (OSError, http.client.HTTPException):
        connection.close()
        return 0, http.client.HTTPConnection(host, port, timeout=60)  # 0: no answer at all


def soak_figure(line: dict) -> SoakFigure:
    return SoakFigure(**{k: v for k, v in line.items() if k in SoakFigure.__dataclass_fields__})


__all__ = ["READ_TIMEOUT_S", "RSS_GROWTH_LIMIT_MIB", "SoakFigure", "measure_soak", "soak_figure"]
