"""Which nodes the field keeps in float: the first conv, the last FC/BN layers, every PReLU.

Face embedders lose most of their INT8 accuracy at the ends of the network and in PReLU, which
comes in two forms: the ``PRelu`` op, and exporters' decompositions of it,
``Relu(x) + alpha * (x - Abs(x)) * 0.5`` (Relu/Abs/Sub/Mul/Add) or ``Relu(x) - alpha * Relu(-x)``
(Neg/Relu/Mul/Sub). Names are read from the graph itself (OpenVINO friendly names, ONNX node
names), so the ignored scope can be validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Op types per framework, under the names each spells them.
OP_TYPES = {
    "openvino": {
        "conv": ("Convolution", "GroupConvolution"),
        "fc": ("MatMul",),
        "bn": ("BatchNormInference", "Multiply", "Add"),  # BN after conversion: Multiply + Add
        "prelu": ("PRelu",),
        "relu": ("Relu",), "abs": ("Abs",), "neg": ("Negative",),
        "sub": ("Subtract",), "mul": ("Multiply",), "add": ("Add",),
    },
    "onnx": {
        "conv": ("Conv",),
        "fc": ("Gemm", "MatMul"),
        "bn": ("BatchNormalization",),
        "prelu": ("PRelu",),
        "relu": ("Relu",), "abs": ("Abs",), "neg": ("Neg",),
        "sub": ("Sub",), "mul": ("Mul",), "add": ("Add",),
    },
}


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    inputs: tuple[str, ...]  # tensor names
    outputs: tuple[str, ...]


@dataclass
class GraphView:
    """Nodes in topological order, enough to find patterns by type and wiring."""

    framework: str
    nodes: list[Node]
    consumers: dict[str, list[Node]] = field(default_factory=dict)
    producers: dict[str, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in self.nodes:
            for tensor in node.inputs:
                self.consumers.setdefault(tensor, []).append(node)
            for tensor in node.outputs:
                self.producers[tensor] = node

    def is_(self, node: Node, kind: str) -> bool:
        return node.type in OP_TYPES[self.framework][kind]

    def users(self, node: Node, kind: str | None = None) -> list[Node]:
        found = [c for out in node.outputs for c in self.consumers.get(out, [])]
        return [c for c in found if kind is None or self.is_(c, kind)]


@dataclass(frozen=True)
class FieldScope:
    """The nodes the field's recipe keeps in float, by reason."""

    first_conv: tuple[str, ...]
    last_layers: tuple[str, ...]
    prelu_ops: tuple[str, ...]
    prelu_decomposed: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys((*self.first_conv, *self.last_layers, *self.prelu_ops, *self.prelu_decomposed)))

    def record(self) -> dict:
        return {"first_conv": list(self.first_conv), "last_fc_bn": list(self.last_layers),
                "prelu": len(self.prelu_ops), "prelu_decomposed_nodes": len(self.prelu_decomposed)}


def openvino_view(model) -> GraphView:
    nodes = []
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        inputs = tuple(f"{i.get_source_output().get_node().get_friendly_name()}:{i.get_source_output().get_index()}"
                       for i in op.inputs())
        outputs = tuple(f"{name}:{k}" for k in range(op.get_output_size()))
        nodes.append(Node(name, op.get_type_name(), inputs, outputs))
    return GraphView("openvino", nodes)


def onnx_view(model) -> GraphView:
    return GraphView("onnx", [Node(n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node])


def field_scope(view: GraphView) -> FieldScope:
    """First conv, the FC/BN layers after the last conv, and both forms of PReLU."""
    convs = [n for n in view.nodes if view.is_(n, "conv")]
    first = (convs[0].name,) if convs else ()
    tail: list[str] = []
    if convs:
        after = view.nodes[view.nodes.index(convs[-1]) + 1:]
        tail = [n.name for n in after if view.is_(n, "fc") or (view.is_(n, "bn") and _is_batch_norm(view, n))]
    prelu = tuple(n.name for n in view.nodes if view.is_(n, "prelu"))
    return FieldScope(first, tuple(tail), prelu, tuple(decomposed_prelu(view)))


def _is_batch_norm(view: GraphView, node: Node) -> bool:
    """A BN op, or (OpenVINO) a Multiply/Add with a constant operand, unlike a residual Add."""
    if node.type == OP_TYPES[view.framework]["bn"][0]:
        return True
    return any(t in view.producers and view.producers[t].type in ("Constant", "Convert") for t in node.inputs)


def decomposed_prelu(view: GraphView) -> list[str]:
    """Node names of PReLUs written as elementwise ops (both decompositions)."""
    found: list[str] = []
    for node in view.nodes:
        if view.is_(node, "abs"):
            found += _abs_form(view, node)
        elif view.is_(node, "neg"):
            found += _neg_form(view, node)
    return list(dict.fromkeys(found))


def _abs_form(view: GraphView, abs_node: Node) -> list[str]:
    """Relu(x) + (x - Abs(x)) * alpha [* 0.5]."""
    x = abs_node.inputs[0]
    relus = [n for n in view.consumers.get(x, []) if view.is_(n, "relu")]
    subs = [n for n in view.users(abs_node, "sub") if x in n.inputs]
    if not relus or not subs:
        return []
    chain, tip = [], subs[0]
    while len(chain) < 2:
        muls = view.users(tip, "mul")
        if len(muls) != 1:
            break
        chain.append(muls[0])
        tip = muls[0]
    adds = [n for n in view.users(tip, "add") if relus[0].outputs[0] in n.inputs]
    if not chain or not adds:
        return []
    return [relus[0].name, abs_node.name, subs[0].name, *(m.name for m in chain), adds[0].name]


def _neg_form(view: GraphView, neg_node: Node) -> list[str]:
    """Relu(x) - alpha * Relu(-x)."""
    x = neg_node.inputs[0]
    relu_pos = [n for n in view.consumers.get(x, []) if view.is_(n, "relu")]
    relu_neg = view.users(neg_node, "relu")
    if not relu_pos or len(relu_neg) != 1:
        return []
    muls = view.users(relu_neg[0], "mul")
    if len(muls) != 1:
        return []
    subs = [n for n in view.users(muls[0], "sub") if relu_pos[0].outputs[0] in n.inputs]
    if not subs:
        return []
    return [relu_pos[0].name, neg_node.name, relu_neg[0].name, muls[0].name, subs[0].name]
