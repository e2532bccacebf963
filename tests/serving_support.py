"""A real `facezoo serve` in a subprocess on 127.0.0.1 (an ephemeral port), for the serving tests."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np

from facezoo.faces import synthetic_face

NAME = "mindface-arcface-mobilefacenet"
URL_LINE = re.compile(r"serving .* at (http://127\.0\.0\.1:\d+)")


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    @property
    def hostport(self) -> str:
        return self.url.removeprefix("http://")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the server did not stop within {timeout} s after SIGTERM:\n{self.output()[-3000:]}")


def facezoo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "facezoo.cli.main", *args]


def start_server(args: list[str], log: Path, timeout: float = 120) -> Server:
    """Start `facezoo serve ARGS --port 0`; return once /v2/health/ready answers 200."""
    env = {**os.environ, "COLUMNS": "400"}
    with open(log, "wb") as sink:
        process = subprocess.Popen(facezoo_command("serve", *args, "--port", "0"), stdout=sink,
                                   stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"facezoo serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        match = URL_LINE.search(log.read_text(encoding="utf-8", errors="replace"))
        if match:
            url = match.group(1)
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    return Server(url, process, log)
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    process.kill()
    process.wait()
    raise AssertionError(f"facezoo serve was not ready within {timeout} s (url {url}):\n{log.read_text()[-3000:]}")


def binary_infer_body(batch: np.ndarray, input_name: str = "data", binary_output: bool = True) -> tuple[bytes, dict]:
    """A KServe v2 request in the binary tensor extension, as tritonclient writes it."""
    header = {"inputs": [{"name": input_name, "shape": list(batch.shape), "datatype": "FP32",
                          "parameters": {"binary_data_size": batch.nbytes}}]}
    if binary_output:
        header["parameters"] = {"binary_data_output": True}
    text = json.dumps(header).encode()
    return text + np.ascontiguousarray(batch, np.float32).tobytes(), {
        "Inference-Header-Content-Length": str(len(text)), "Content-Type": "application/octet-stream"}


def read_binary_response(response: httpx.Response) -> tuple[dict, np.ndarray]:
    length = int(response.headers["Inference-Header-Content-Length"])
    header = json.loads(response.content[:length])
    output = header["outputs"][0]
    data = np.frombuffer(response.content[length:length + output["parameters"]["binary_data_size"]], "<f4")
    return header, data.reshape(output["shape"])


def jpeg_declaring(width: int, height: int) -> bytes:
    """A few-hundred-byte JPEG whose frame header (SOF0) declares width × height pixels."""
    data = bytearray(cv2.imencode(".jpg", synthetic_face(2, size=(16, 16)))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
