"""NNCF on the two graph formats facezoo quantizes: OpenVINO IR and ONNX (QDQ).

An engine loads the FP32 file, quantizes it with a recipe (plain PTQ or accuracy control), lists
and bypasses its activation quantizers (for the mixed-precision step), measures how much noise
each adds, and saves a candidate. The ONNX engine folds BatchNorm into Conv first (ONNX
Runtime's quant_pre_process), so that each Conv's weights are quantized as they will be run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from facezoo.numerics import cosine_rows
from facezoo.quantization.errors import QuantizationError
from facezoo.quantization.recipes import Recipe, samples
from facezoo.quantization.scopes import GraphView, onnx_view, openvino_view


class OpenVinoEngine:
    format = "openvino"
    suffix = ".xml"

    def load(self, path: Path):
        import openvino as ov

        return ov.Core().read_model(str(path))

    load_int8 = load  # a quantized IR reads like any other

    def view(self, model) -> GraphView:
        return openvino_view(model)

    def quantize(self, model, calibration: np.ndarray, recipe: Recipe, subset_size: int):
        import nncf

        return nncf.quantize(model, nncf.Dataset(samples(calibration)), **recipe.nncf_arguments(subset_size))

    def accuracy_control(self, model, calibration, tuning, recipe: Recipe, subset_size: int, restorer: dict):
        import nncf

        def validate(compiled, indices) -> tuple[float, list[float]]:
            # NNCF calls this on the whole tuning set and on single items: items are indices.
            _stop_if_out_of_time(restorer)
            rows = list(indices)
            outputs = np.concatenate([compiled(tuning.inputs[i : i + 1])[0] for i in rows])
            values = cosine_rows(tuning.reference[rows], outputs)
            return float(values.min()), [float(v) for v in values]

        tuning_items = nncf.Dataset(list(range(len(tuning.inputs))), lambda i: tuning.inputs[i : i + 1])
        return _accuracy_control(nncf, model, nncf.Dataset(samples(calibration)), tuning_items,
                                 validate, recipe, subset_size, restorer)

    def run(self, model, inputs: np.ndarray) -> np.ndarray:
        import openvino as ov

        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return np.asarray(compiled.create_infer_request().infer({0: np.ascontiguousarray(inputs, np.float32)})[0])

    def quantizers(self, model) -> list[str]:
        """Activation FakeQuantize nodes (NNCF stores weights already compressed)."""
        return [op.get_friendly_name() for op in model.get_ordered_ops()
                if op.get_type_name() == "FakeQuantize" and op.input_value(0).get_node().get_type_name() != "Constant"]

    def bypass(self, model, names: set[str]):
        """A copy with those quantizers removed: their layers take float activations."""
        copy = model.clone()
        for op in copy.get_ordered_ops():
            if op.get_friendly_name() in names and op.get_type_name() == "FakeQuantize":
                op.output(0).replace(op.input_value(0))
        copy.validate_nodes_and_infer_types()
        return copy

    def noise(self, model, inputs: np.ndarray) -> dict[str, float]:
        """Relative noise ‖q(x) − x‖² / ‖x‖² each activation quantizer adds, in one pass."""
        import openvino as ov

        wanted = set(self.quantizers(model))
        probe = model.clone()
        ops = [op for op in probe.get_ordered_ops() if op.get_friendly_name() in wanted]
        probe.add_outputs([port for op in ops for port in (op.input_value(0), op.output(0))])
        compiled = ov.Core().compile_model(probe, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        result = compiled.create_infer_request().infer({0: np.ascontiguousarray(inputs, np.float32)})
        values = [np.asarray(result[port]) for port in compiled.outputs][1:]
        return {op.get_friendly_name(): _relative_noise(values[2 * k], values[2 * k + 1]) for k, op in enumerate(ops)}

    def feeds(self, model) -> dict[str, str]:
        """Each activation quantizer's consumers, "Type name" (what its rounding reaches first)."""
        wanted = set(self.quantizers(model))
        found = {}
        for op in model.get_ordered_ops():
            if op.get_friendly_name() in wanted:
                targets = [t.get_node() for t in op.output(0).get_target_inputs()]
                found[op.get_friendly_name()] = ", ".join(sorted(f"{t.get_type_name()} {t.get_friendly_name()}"
                                                                 for t in targets))
        return found

    def save(self, model, path: Path) -> None:
        import openvino as ov

        model.set_rt_info("INT8", ["facezoo", "precision"])
        ov.save_model(model, str(path), compress_to_fp16=False)


class OnnxEngine:
    format = "onnx"
    suffix = ".onnx"

    def load(self, path: Path):
        """The FP32 graph with BatchNorm folded into Conv and every node named (NNCF scopes use names)."""
        import onnx
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with tempfile.TemporaryDirectory() as scratch:
            prepared = Path(scratch) / "prepared.onnx"
            try:
                quant_pre_process(str(path), str(prepared), skip_optimization=False, skip_onnx_shape=False,
                                  skip_symbolic_shape=True, auto_merge=False)  # ONNX shape inference suffices
            except Exception as exc:  # ONNX Runtime raises bare Exceptions from its optimizers
                raise QuantizationError(f"{path.name}: ONNX Runtime's quant_pre_process failed: {exc}") from None
            model = onnx.load(str(prepared))
        return _named(model)

    def load_int8(self, path: Path):
        """A quantized (QDQ) file as written: nothing folded, every node named."""
        import onnx

        return _named(onnx.load(str(path)))

    def view(self, model) -> GraphView:
        return onnx_view(model)

    def quantize(self, model, calibration: np.ndarray, recipe: Recipe, subset_size: int):
        import nncf

        feed = model.graph.input[0].name
        return nncf.quantize(model, nncf.Dataset(samples(calibration, feed)), **recipe.nncf_arguments(subset_size))

    def accuracy_control(self, model, calibration, tuning, recipe: Recipe, subset_size: int, restorer: dict):
        import nncf

        feed = model.graph.input[0].name

        def validate(candidate, indices) -> tuple[float, list[float]]:
            _stop_if_out_of_time(restorer)
            rows = list(indices)
            session = _session(candidate)
            outputs = np.concatenate([session.run(None, {feed: tuning.inputs[i : i + 1]})[0] for i in rows])
            values = cosine_rows(tuning.reference[rows], outputs)
            return float(values.min()), [float(v) for v in values]

        tuning_items = nncf.Dataset(list(range(len(tuning.inputs))), lambda i: {feed: tuning.inputs[i : i + 1]})
        return _accuracy_control(nncf, model, nncf.Dataset(samples(calibration, feed)), tuning_items,
                                 validate, recipe, subset_size, restorer)

    def run(self, model, inputs: np.ndarray, extra_outputs: list | None = None) -> list[np.ndarray]:
        import onnx

        if extra_outputs:
            copy = onnx.ModelProto()
            copy.CopyFrom(model)
            known = {o.name for o in copy.graph.output}
            for name in extra_outputs:
                if name not in known:
                    copy.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            model = copy
        session = _session(model)
        feed = model.graph.input[0].name
        names = [model.graph.output[0].name, *(extra_outputs or [])]
        return session.run(names, {feed: np.ascontiguousarray(inputs, np.float32)})

    def quantizers(self, model) -> list[str]:
        """QuantizeLinear nodes on activations (weights are stored as int8 initializers)."""
        constants = {i.name for i in model.graph.initializer}
        return [n.name for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in constants]

    def bypass(self, model, names: set[str]):
        import onnx

        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        graph = copy.graph
        rewire: dict[str, str] = {}
        dropped: set[str] = set()
        for node in graph.node:
            if node.op_type == "QuantizeLinear" and node.name in names:
                dropped.add(node.name)
                for consumer in graph.node:
                    if consumer.op_type == "DequantizeLinear" and consumer.input[0] == node.output[0]:
                        rewire[consumer.output[0]] = node.input[0]
                        dropped.add(consumer.name)
        kept = [n for n in graph.node if n.name not in dropped]
        for node in kept:
            node.input[:] = [rewire.get(name, name) for name in node.input]
        del graph.node[:]
        graph.node.extend(kept)
        return copy

    def noise(self, model, inputs: np.ndarray) -> dict[str, float]:
        wanted = set(self.quantizers(model))
        pairs = []
        for node in model.graph.node:
            if node.name in wanted:
                dq = next((d for d in model.graph.node if d.op_type == "DequantizeLinear" and d.input[0] == node.output[0]), None)
                if dq is not None:
                    pairs.append((node.name, node.input[0], dq.output[0]))
        values = self.run(model, inputs, [t for _, x, y in pairs for t in (x, y)])[1:]
        return {name: _relative_noise(values[2 * k], values[2 * k + 1]) for k, (name, _, _) in enumerate(pairs)}

    def feeds(self, model) -> dict[str, str]:
        """Each activation QuantizeLinear's consumers behind its DequantizeLinear, "Type name"."""
        wanted = set(self.quantizers(model))
        nodes = list(model.graph.node)
        found = {}
        for node in nodes:
            if node.name in wanted:
                dequant = [d.output[0] for d in nodes if d.op_type == "DequantizeLinear" and d.input[0] == node.output[0]]
                users = [f"{u.op_type} {u.name}" for u in nodes if any(t in u.input for t in dequant)]
                found[node.name] = ", ".join(sorted(users))
        return found

    def save(self, model, path: Path) -> None:
        import onnx

        from facezoo.converters.onnx_graph import check_and_save

        model.producer_name = "facezoo"
        onnx.helper.set_model_props(model, {"facezoo.precision": "INT8"})
        used = {name for node in model.graph.node for name in node.input}
        kept = [init for init in model.graph.initializer if init.name in used]  # NNCF leaves unused scales
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
        check_and_save(model, path)


ENGINES = {"openvino": OpenVinoEngine, "onnx": OnnxEngine}


def engine_for(path: Path):
    for engine in ENGINES.values():
        if Path(path).suffix == engine.suffix:
            return engine()
    raise QuantizationError(f"{path}: facezoo quantizes OpenVINO IR (.xml) and ONNX (.onnx) files, not {Path(path).suffix!r}")


def _named(model):
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
    return model


def _session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _relative_noise(x: np.ndarray, q: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    return float(np.sum((np.asarray(q, np.float64) - x) ** 2) / max(float(np.sum(x * x)), 1e-30))


def _stop_if_out_of_time(restorer: dict) -> None:
    """Accuracy control is one candidate that can run for many minutes: it stops at its next
    validation once the ladder's budget is spent (``restorer["out_of_time"]``)."""
    if restorer.get("out_of_time", lambda: False)():
        raise QuantizationError("stopped: the INT8 budget ran out during accuracy control")


def _accuracy_control(nncf, model, calibration, validation, validate, recipe: Recipe, subset_size: int,
                      restorer: dict) -> Any:
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    arguments = recipe.nncf_arguments(subset_size)
    return nncf.quantize_with_accuracy_control(
        model, calibration, validation, validate,
        max_drop=restorer["max_drop"],
        drop_type=nncf.DropType.ABSOLUTE,
        preset=arguments["preset"],
        target_device=arguments["target_device"],
        subset_size=subset_size,
        fast_bias_correction=arguments["fast_bias_correction"],
        model_type=arguments["model_type"],
        ignored_scope=arguments["ignored_scope"],
        advanced_quantization_parameters=arguments["advanced_parameters"],
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            max_num_iterations=restorer["max_iterations"], ranking_subset_size=restorer["ranking_subset_size"]
        ),
    )
