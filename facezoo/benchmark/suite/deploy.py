"""Serving and Ray rows: `facezoo serve` under 1, 4 and 16 clients, and `embed-dataset` on a local Ray,
each against the same model in process.

Clients and server share this machine's cores, as they would on one box: the ratio says what
serving costs here, HTTP included. The in-process baseline is timed before and after the
server (their mean), so that drift in the machine's speed falls on both sides.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facezoo.benchmark.inputs import tensor_batches

SERVING_TARGET = 0.90  # of in-process throughput, 16 clients, dynamic batching
RAY_TARGET = 0.90
URL_LINE = re.compile(r"serving .* at http://([\d.]+):(\d+)")


@dataclass
class ServingFigure:
    model: str
    file: str
    clients: int
    requests: int
    throughput: float  # images/s, one image per request
    p50_ms: float
    p99_ms: float
    mean_batch: float  # images per inference after dynamic batching
    in_process: float  # images/s, the same file in process at the server's largest batch
    errors: int = 0
    server_cpu_ms: float = 0.0  # CPU time per image: the server process (inference included)
    client_cpu_ms: float = 0.0  # CPU time per image: the clients
    in_process_cpu_ms: float = 0.0  # CPU time per image in process

    @property
    def ratio(self) -> float | None:
        return self.throughput / self.in_process if self.in_process else None

    @property
    def cpu_ratio(self) -> float | None:
        """In-process CPU per image over served CPU per image (server and clients): what the ratio
        would be on cores that do nothing else, whatever else shares this machine meanwhile."""
        spent = self.server_cpu_ms + self.client_cpu_ms
        return self.in_process_cpu_ms / spent if spent and self.in_process_cpu_ms else None


@dataclass
class RayFigure:
    model: str
    images: list[int]
    seconds: list[float]  # job time for each size, after ray.init (actors, reading, writing included)
    in_process: float  # faces/s: read, decode and embed in one process
    startup_s: float  # ray.init on this machine
    actors: int
    error: str = ""
    cpu_ms: list[float] = field(default_factory=list)  # CPU per face of each job: driver and every Ray process
    in_process_cpu_ms: float = 0.0
    in_process_runs: list[float] = field(default_factory=list)  # before and after the Ray jobs

    @property
    def throughput(self) -> float:
        return self.images[-1] / self.seconds[-1] if self.seconds else 0.0

    @property
    def cpu_ratio(self) -> float | None:
        """In-process CPU per face over the larger job's: the ratio on cores that do nothing else."""
        return self.in_process_cpu_ms / self.cpu_ms[-1] if self.cpu_ms and self.cpu_ms[-1] else None

    @property
    def marginal(self) -> float:
        """Faces/s of the extra images of the larger job: the rate once actors and the model are up."""
        if len(self.seconds) < 2 or self.seconds[-1] <= self.seconds[0]:
            return 0.0
        return (self.images[-1] - self.images[0]) / (self.seconds[-1] - self.seconds[0])

    @property
    def ratio(self) -> float | None:
        return self.throughput / self.in_process if self.in_process else None


@dataclass
class DeploymentSection:
    serving: list[ServingFigure] = field(default_factory=list)
    ray: RayFigure | None = None
    settings: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    soak: object | None = None  # facezoo.benchmark.suite.soak.SoakFigure


def in_process_throughput(path: str, batch: int, seconds: float) -> tuple[float, float]:
    """The file loaded as `facezoo serve` loads it, fed max-size batches with every request in flight.

    Returns images/s and CPU milliseconds per image."""
    from facezoo.runtime import load
    from facezoo.runtime.backends import backend_for

    hint = "THROUGHPUT" if backend_for(Path(path), None) == "openvino" else None
    with load(path, performance_hint=hint) as model:
        spec = model.input_spec
        batches = tensor_batches(spec.shape, spec.channel_order, batch, count=4)
        model.infer_many(batches)  # warm-up
        images, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:
            model.infer_many(batches)
            images += batch * len(batches)
        return images / (time.perf_counter() - start), (time.process_time() - cpu) * 1e3 / images


def measure_serving(path: str, model: str, workdir: str, clients=(1, 4, 16), seconds: float = 5.0,
                    max_batch: int = 32, max_delay_ms: float = 5.0) -> list[dict]:
    before, cpu_before = in_process_throughput(path, max_batch, seconds)
    log = Path(workdir) / "serve.log"
    server = serve_in_child(path, log, "--max-batch", str(max_batch), "--max-delay-ms", str(max_delay_ms))
    rows = []
    try:
        host, port = wait_ready(server, log)
        name = Path(path).stem
        from facezoo.runtime import load

        with load(path) as loaded:
            spec = loaded.input_spec
        singles = tensor_batches(spec.shape, spec.channel_order, 1, count=32)
        _load(host, port, name, singles, 2, 1.0)  # warm-up
        for count in clients:
            batches_before = _batch_counts(host, port)
            server_cpu, client_cpu = _cpu_seconds(server.pid), time.process_time()
            requests, laps, errors, elapsed = _load(host, port, name, singles, count, seconds)
            server_cpu, client_cpu = _cpu_seconds(server.pid) - server_cpu, time.process_time() - client_cpu
            batches_after = _batch_counts(host, port)
            done = batches_after[0] - batches_before[0]
            mean_batch = (batches_after[1] - batches_before[1]) / done if done else 0.0
            p50, p99 = (float(v) for v in np.percentile(np.asarray(laps) * 1e3, [50, 99])) if laps else (0.0, 0.0)
            per_image = 1e3 / max(requests, 1)
            rows.append(ServingFigure(model, Path(path).suffix.lstrip("."), count, requests, requests / elapsed,
                                      p50, p99, mean_batch, 0.0, errors, server_cpu * per_image, client_cpu * per_image))
    finally:
        stop_child(server)
    after, cpu_after = in_process_throughput(path, max_batch, seconds)
    for row in rows:
        row.in_process = (before + after) / 2
        row.in_process_cpu_ms = (cpu_before + cpu_after) / 2
    return [row.__dict__ | {"in_process_runs": [before, after]} for row in rows]


def serve_in_child(path: str, log: Path, *options: str) -> subprocess.Popen:
    """`facezoo serve PATH --port 0 OPTIONS` in a child process, its output in ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as sink:
        return subprocess.Popen([sys.executable, "-m", "facezoo.cli.main", "serve", path, "--port", "0", *options],
                                stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "400"})


def stop_child(server: subprocess.Popen) -> None:
    """SIGTERM (the drain), and a kill if the server has not stopped within a minute."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.kill()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(server: subprocess.Popen, log: Path, timeout: float = 120) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"facezoo serve exited with {server.returncode}: {log.read_text()[-500:]}")
        match = URL_LINE.search(log.read_text(errors="replace"))
        if match:
            try:
                connection = http.client.HTTPConnection(match.group(1), int(match.group(2)), timeout=2)
                connection.request("GET", "/v2/health/ready")
                if connection.getresponse().status == 200:
                    return match.group(1), int(match.group(2))
            except OSError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"facezoo serve was not ready in {timeout} s")


def _load(host: str, port: int, name: str, inputs: list[np.ndarray], clients: int, seconds: float):
    """`clients` threads, each one request in flight at a time (binary KServe v2, as tritonclient sends)."""
    bodies = []
    for batch in inputs:
        header = json.dumps({"inputs": [{"name": "data", "shape": list(batch.shape), "datatype": "FP32",
                                         "parameters": {"binary_data_size": batch.nbytes}}],
                             "parameters": {"binary_data_output": True}}).encode()
        bodies.append((header + batch.tobytes(), {"Inference-Header-Content-Length": str(len(header)),
                                                  "Content-Type": "application/octet-stream"}))
    laps: list[float] = []
    errors = [0]
    stop = time.perf_counter() + seconds
    path = f"/v2/models/{name}/infer"

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        index = offset
        while time.perf_counter() < stop:
            body, headers = bodies[index % len(bodies)]
            index += 1
            begin = time.perf_counter()
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                laps.append(time.perf_counter() - begin)
            else:
                errors[0] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i * 7,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(laps), laps, errors[0], time.perf_counter() - start


def _batch_counts(host: str, port: int) -> tuple[float, float]:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    count = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("facezoo_batch_size_count"))
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("facezoo_batch_size_sum"))
    return count, total


def measure_ray(path: str, model: str, workdir: str, sizes=(800, 1600), batch_size: int = 32, actors: int = 1) -> dict:
    """embed-dataset on a local Ray for two dataset sizes, and the same files embedded in process."""
    import cv2
    import ray

    from facezoo.batch import EmbedJob, run_embed_job
    from facezoo.faces import synthetic_face
    from facezoo.runtime import Embedder

    root = Path(workdir)
    folders = {}
    for size in sizes:
        folder = root / f"faces-{size}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(size):
            target = folder / f"{index:05d}.png"
            if not target.exists():
                cv2.imwrite(str(target), synthetic_face(index % 500, index // 500))
        folders[size] = folder
    files = sorted(folders[sizes[-1]].iterdir())
    embedder = Embedder(path, batch_size=batch_size)
    embedder.embed([synthetic_face(1)])  # warm-up

    def in_process() -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        for first in range(0, len(files), batch_size):
            chunk = files[first:first + batch_size]
            embedder.embed([cv2.imdecode(np.fromfile(str(f), np.uint8), cv2.IMREAD_COLOR) for f in chunk])
        return len(files) / (time.perf_counter() - start), (time.process_time() - cpu) * 1e3 / len(files)

    before, cpu_before = in_process()
    begin = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False, object_store_memory=512 << 20)
    startup = time.perf_counter() - begin
    seconds, cpu_ms = [], []
    try:
        for size in sizes:
            job = EmbedJob(str(folders[size]), path, str(root / f"out-{size}.parquet"), actors=actors,
                           batch_size=batch_size)
            with TreeCpu() as cpu:
                seconds.append(run_embed_job(job, say=lambda _line: None).seconds)
            cpu_ms.append(cpu.seconds * 1e3 / size)
    finally:
        ray.shutdown()
    after, cpu_after = in_process()
    embedder.close()
    figure = RayFigure(model, list(sizes), seconds, (before + after) / 2, startup, actors, "", cpu_ms,
                       (cpu_before + cpu_after) / 2, [before, after])
    return figure.__dict__


class TreeCpu:
    """CPU seconds of this process and every descendant while the block runs, Ray's included.

    Sampled every `interval` per process id, so that a worker or actor that exits keeps the time
    it had used (lost: at most its last interval); reaped children are not added twice.
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self, starting: bool = False) -> None:
        import psutil

        me = psutil.Process()
        for process in [me, *me.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            key = process.pid
            # running before the block: count from now; started during it: count from zero
            self.first.setdefault(key, times.user + times.system if starting else 0.0)
            self.last[key] = times.user + times.system

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "TreeCpu":
        self._sample(starting=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first.get(pid, 0.0) for pid in self.last)


def serving_rows(lines: list[dict]) -> list[ServingFigure]:
    return [ServingFigure(**_fields(ServingFigure, line)) for line in lines]


def ray_figure(line: dict) -> RayFigure:
    return RayFigure(**_fields(RayFigure, line))


def _fields(cls, line: dict) -> dict:
    """Only the dataclass's own fields: JSON documents also carry derived figures."""
    return {k: v for k, v in line.items() if k in cls.__dataclass_fields__}
