"""The batcher and the KServe codec on their own, in process (the HTTP tests run them in a server)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facezoo.serving.batcher import BatchingOptions, DynamicBatcher
from facezoo.serving.errors import BadRequest, Unavailable
from facezoo.serving.kserve import TensorSpecV2, encode_infer_response, parse_infer_request


class RecordingLane:
    """A lane that remembers its batch sizes and returns each row's first values doubled."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None):
        self.sizes: list[int] = []
        self.delay = delay
        self.fail_on = fail_on

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.sizes.append(len(batch))
        time.sleep(self.delay)
        if self.fail_on is not None and len(batch) == self.fail_on:
            raise RuntimeError("the library failed")
        return {"out": batch.reshape(len(batch), -1)[:, :2] * 2, "count": np.full((len(batch), 1), len(batch))}


def _rows(count: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + count, dtype=np.float32).repeat(4).reshape(count, 1, 2, 2)


def test_a_request_larger_than_max_batch_is_split_and_put_together_in_order():
    lane = RecordingLane()
    batcher = DynamicBatcher([lane], BatchingOptions(max_batch=4, max_delay_s=0.001))
    try:
        result = batcher.submit(_rows(10)).result(5)
    finally:
        batcher.close()
    np.testing.assert_array_equal(result["out"][:, 0], np.arange(10) * 2)
    np.testing.assert_array_equal(result["count"][:, 0], [4] * 8 + [2] * 2)  # every output, row by row
    assert lane.sizes == [4, 4, 2]


def test_concurrent_requests_within_the_delay_share_one_inference():
    lane = RecordingLane()
    batcher = DynamicBatcher([lane], BatchingOptions(max_batch=32, max_delay_s=1.0))
    try:
        futures = [batcher.submit(_rows(1 + i % 3, start=100 * i)) for i in range(6)]
        results = [f.result(5) for f in futures]
    finally:
        batcher.close()
    assert lane.sizes == [sum(1 + i % 3 for i in range(6))]
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["out"][:, 0], (np.arange(1 + i % 3) + 100 * i) * 2)


def test_idle_lanes_share_what_is_queued():
    lanes = [RecordingLane(delay=0.05), RecordingLane(delay=0.05)]
    batcher = DynamicBatcher(lanes, BatchingOptions(max_batch=32, max_delay_s=1.0))
    try:
        futures = [batcher.submit(_rows(1, start=i)) for i in range(16)]
        for f in futures:
            f.result(5)
    finally:
        batcher.close()
    assert sorted(lanes[0].sizes + lanes[1].sizes) == [8, 8]


def test_cancelled_requests_are_never_run_and_free_the_queue():
    lane = RecordingLane()
    batcher = DynamicBatcher([lane], BatchingOptions(max_batch=32, max_delay_s=0.5, max_queue=4))
    try:
        waiting = batcher.submit(_rows(3))
        with pytest.raises(Unavailable, match="overloaded"):
            batcher.submit(_rows(2))
        assert waiting.cancel()
        assert batcher.admitted_images == 0
        kept = batcher.submit(_rows(4, start=7))
        np.testing.assert_array_equal(kept.result(5)["out"][:, 0], np.arange(7, 11) * 2)
    finally:
        batcher.close()
    assert lane.sizes == [4]


def test_a_failing_inference_fails_its_requests_only():
    lane = RecordingLane(fail_on=3)
    batcher = DynamicBatcher([lane], BatchingOptions(max_batch=32, max_delay_s=0.001))
    try:
        with pytest.raises(RuntimeError, match="the library failed"):
            batcher.submit(_rows(3)).result(5)
        assert batcher.submit(_rows(2)).result(5)["out"].shape == (2, 2)
        assert batcher.admitted_images == 0
    finally:
        batcher.close()


def test_close_finishes_what_was_admitted():
    lane = RecordingLane(delay=0.05)
    batcher = DynamicBatcher([lane], BatchingOptions(max_batch=2, max_delay_s=10.0))
    futures = [batcher.submit(_rows(1, start=i)) for i in range(5)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    closer.join(10)
    assert [f.result(0)["out"][0, 0] for f in futures] == [0, 2, 4, 6, 8]
    with pytest.raises(Unavailable, match="shutting down"):
        batcher.submit(_rows(1))


INPUT = TensorSpecV2("data", "FP32", (-1, 3, 4, 5))
OUTPUT = TensorSpecV2("embedding", "FP32", (-1, 8))


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 4), binary=st.booleans(), seed=st.integers(0, 2**16))
def test_requests_decode_to_the_array_that_was_sent(batch, binary, seed):
    array = np.random.default_rng(seed).normal(size=(batch, 3, 4, 5)).astype(np.float32)
    tensor = {"name": "data", "shape": list(array.shape), "datatype": "FP32"}
    if binary:
        tensor["parameters"] = {"binary_data_size": array.nbytes}
        header = json.dumps({"inputs": [tensor]}).encode()
        request = parse_infer_request(header + array.tobytes(), str(len(header)), [INPUT], [OUTPUT])
    else:
        tensor["data"] = array.ravel().tolist()
        request = parse_infer_request(json.dumps({"inputs": [tensor]}).encode(), None, [INPUT], [OUTPUT])
    np.testing.assert_array_equal(request.inputs["data"], array)


@pytest.mark.parametrize("binary", [True, False])
def test_responses_carry_the_rows_as_sent(binary):
    rows = np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32)
    body, length = encode_infer_response("m", "id-7", [(OUTPUT, rows, binary)])
    header = json.loads(body[:length] if binary else body)
    assert header["id"] == "id-7" and header["outputs"][0]["shape"] == [3, 8]
    if binary:
        assert header["outputs"][0]["parameters"]["binary_data_size"] == rows.nbytes
        np.testing.assert_array_equal(np.frombuffer(body[length:], "<f4").reshape(3, 8), rows)
    else:
        np.testing.assert_array_equal(np.asarray(header["outputs"][0]["data"], np.float32).reshape(3, 8), rows)


def test_duplicate_and_missing_inputs_are_named():
    tensor = {"name": "data", "shape": [1, 3, 4, 5], "datatype": "FP32", "data": [0.0] * 60}
    with pytest.raises(BadRequest, match=r"inputs\[1\].name: input 'data' is given twice"):
        parse_infer_request(json.dumps({"inputs": [tensor, tensor]}).encode(), None, [INPUT], [OUTPUT])
    with pytest.raises(BadRequest, match=r"parameters.binary_data_output: expected true or false"):
        parse_infer_request(json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": "yes"}}).encode(),
                            None, [INPUT], [OUTPUT])
    with pytest.raises(BadRequest, match=r"id: expected a string"):
        parse_infer_request(json.dumps({"id": 3, "inputs": [tensor]}).encode(), None, [INPUT], [OUTPUT])


class ShortLane(RecordingLane):
    """Gives one row too few for batches of three: a model that breaks its contract."""

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = super().infer(batch)
        return {name: values[:-1] for name, values in outputs.items()} if len(batch) == 3 else outputs


def test_a_lane_giving_the_wrong_rows_fails_its_requests_and_keeps_serving():
    batcher = DynamicBatcher([ShortLane()], BatchingOptions(max_batch=32, max_delay_s=0.001))
    try:
        with pytest.raises(RuntimeError, match="2 rows for a batch of 3"):
            batcher.submit(_rows(3)).result(5)
        assert batcher.submit(_rows(2)).result(5)["out"].shape == (2, 2)
        assert batcher.admitted_images == 0
    finally:
        batcher.close()
