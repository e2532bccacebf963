"""Reading MXNet ``*-symbol.json`` graphs without MXNet.

Accepted spellings, from MXNet 0.8 to 1.9:

* node attributes under ``attrs`` (1.x), ``attr`` or ``param`` (0.x; ``param`` holds operator
  parameters and ``attr`` user attributes, both are merged, later keys winning
  ``param`` < ``attr`` < ``attrs``);
* inputs and heads as ``[node, output]`` pairs or ``[node, output, version]`` triples;
* ``heads``, ``arg_nodes`` and ``node_row_ptr`` optional (heads default to output 0 of the last
  node, arg_nodes to every variable).

Attribute values stay strings as MXNet stores them (``"(3, 3)"``, ``"True"``, ``"1e-05"``);
:class:`Node` parses them on demand, naming the node in any error.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from facezoo.sources.mxnet.params import MXNetFormatError

__all__ = [
    "MXNetFormatError",
    "UnsupportedOperatorError",
    "Node",
    "Graph",
    "load_symbol",
    "parse_symbol",
    "graph_to_json",
    "save_symbol",
    "SymbolBuilder",
    "format_attr",
    "parse_bool",
    "parse_int",
    "parse_float",
    "parse_int_tuple",
]

_MISSING = object()


@dataclass
class Node:
    """One node of an MXNet graph. ``op == "null"`` marks a variable (data or parameter)."""

    op: str
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    inputs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def is_variable(self) -> bool:
        return self.op == "null"

    # -- attribute helpers ---------------------------------------------------------------------
    def _error(self, key: str, value: str, what: str) -> MXNetFormatError:
        return MXNetFormatError(f"node {self.name!r} ({self.op}): attribute {key}={value!r} is not {what}")

    def has(self, key: str) -> bool:
        return key in self.attrs

    def get_str(self, key: str, default: Any = _MISSING) -> str:
        if key in self.attrs:
            return self.attrs[key]
        if default is _MISSING:
            raise MXNetFormatError(f"node {self.name!r} ({self.op}): required attribute {key!r} is missing")
        return default

    def get_bool(self, key: str, default: Any = _MISSING) -> bool:
        if key not in self.attrs:
            if default is _MISSING:
                self.get_str(key)
            return default
        return parse_bool(self.attrs[key], lambda: self._error(key, self.attrs[key], "a boolean"))

    def get_int(self, key: str, default: Any = _MISSING) -> int:
        if key not in self.attrs:
            if default is _MISSING:
                self.get_str(key)
            return default
        return parse_int(self.attrs[key], lambda: self._error(key, self.attrs[key], "an integer"))

    def get_float(self, key: str, default: Any = _MISSING) -> float:
        if key not in self.attrs:
            if default is _MISSING:
                self.get_str(key)
            return default
        return parse_float(self.attrs[key], lambda: self._error(key, self.attrs[key], "a number"))

    def get_tuple(self, key: str, default: Any = _MISSING) -> tuple[int, ...]:
        """An integer tuple: ``"(3, 3)"``, ``"[3,3]"``, ``"(3,)"``, ``"3"`` or ``"()"``."""
        if key not in self.attrs:
            if default is _MISSING:
                self.get_str(key)
            return default
        return parse_int_tuple(self.attrs[key], lambda: self._error(key, self.attrs[key], "an integer tuple"))


def _fail(make_error):
    raise make_error()


def parse_bool(text: str, make_error=None) -> bool:
    t = str(text).strip().lower()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    _fail(make_error or (lambda: MXNetFormatError(f"{text!r} is not a boolean")))


def parse_int(text: str, make_error=None) -> int:
    t = str(text).strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:  # "2.0" style integers appear in a few hand-written files
        f = float(t)
        if math.isfinite(f) and f == int(f):
            return int(f)
    except ValueError:
        pass
    _fail(make_error or (lambda: MXNetFormatError(f"{text!r} is not an integer")))


def parse_float(text: str, make_error=None) -> float:
    t = str(text).strip()
    try:
        return float(t)
    except ValueError:
        _fail(make_error or (lambda: MXNetFormatError(f"{text!r} is not a number")))


def parse_int_tuple(text: str, make_error=None) -> tuple[int, ...]:
    make_error = make_error or (lambda: MXNetFormatError(f"{text!r} is not an integer tuple"))
    t = str(text).strip()
    if len(t) > 10_000:
        _fail(make_error)
    if t.startswith(("(", "[")) and t.endswith((")", "]")):
        inner = t[1:-1].strip()
    else:
        inner = t
    if not inner:
        return ()
    parts = [p.strip() for p in inner.split(",")]
    if parts and parts[-1] == "":
        parts = parts[:-1]
    out = []
    for p in parts:
        if p.endswith("L"):  # python2 longs in very old files
            p = p[:-1]
        try:
            out.append(int(p))
        except ValueError:
            _fail(make_error)
    return tuple(out)


@dataclass
class Graph:
    """A parsed MXNet symbol graph; nodes are in topological order (inputs precede users)."""

    nodes: list[Node]
    heads: list[tuple[int, int]]
    arg_nodes: list[int]
    mxnet_version: int | None = None
    path: str | None = None
    node_row_ptr: list[int] | None = None

    def __post_init__(self):
        self._by_name: dict[str, int] = {}
        for i, n in enumerate(self.nodes):
            # MXNet names are unique in practice; the last definition wins like in nnvm lookups
            self._by_name[n.name] = i

    # -- lookups --------------------------------------------------------------------------------
    def index(self, name: str) -> int:
        try:
            return self._by_name[name]
        except KeyError:
            raise MXNetFormatError(f"{self._where()}no node named {name!r}") from None

    def node(self, name: str) -> Node:
        return self.nodes[self.index(name)]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def _where(self) -> str:
        return f"{self.path}: " if self.path else ""

    @property
    def variables(self) -> list[Node]:
        return [n for n in self.nodes if n.is_variable]

    @property
    def operators(self) -> list[Node]:
        return [n for n in self.nodes if not n.is_variable]

    def output_name(self, entry: tuple[int, int]) -> str:
        """MXNet's ``list_outputs`` spelling of an entry: ``<name>_output`` (or ``_output<k>``)."""
        idx, out = entry
        node = self.nodes[idx]
        if node.is_variable:
            return node.name
        return f"{node.name}_output" if out == 0 else f"{node.name}_output{out}"

    def resolve_output(self, name: str) -> tuple[int, int]:
        """Map ``fc1``, ``fc1_output`` or ``slice0_output1`` to ``(node_index, output_index)``."""
        if name in self._by_name:
            return self._by_name[name], 0
        if name.endswith("_output") and name[: -len("_output")] in self._by_name:
            return self._by_name[name[: -len("_output")]], 0
        head, sep, tail = name.rpartition("_output")
        if sep and tail.isdigit() and head in self._by_name:
            return self._by_name[head], int(tail)
        raise MXNetFormatError(
            f"{self._where()}no node or output named {name!r} (give a node name such as "
            f"{self.nodes[self.heads[0][0]].name!r} or its '<name>_output' spelling)"
        )

    def consumers(self) -> dict[int, list[int]]:
        """node index -> indices of the nodes that read any of its outputs."""
        out: dict[int, list[int]] = {i: [] for i in range(len(self.nodes))}
        for i, n in enumerate(self.nodes):
            for src, _ in n.inputs:
                out[src].append(i)
        return out

    def ancestors(self, entries: Iterable[tuple[int, int]], skip_inputs=None) -> list[int]:
        """Sorted indices of the nodes the given entries depend on (themselves included).

        ``skip_inputs(node) -> set of input positions`` lets callers ignore inputs an op does not
        read at inference (the label of ``SoftmaxOutput``).
        """
        seen: set[int] = set()
        stack = [i for i, _ in entries]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            node = self.nodes[i]
            skip = skip_inputs(node) if skip_inputs else ()
            for pos, (src, _) in enumerate(node.inputs):
                if pos not in skip:
                    stack.append(src)
        return sorted(seen)


def _entry(value, what: str, where: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise MXNetFormatError(f"{where}{what} must be [node, output] or [node, output, version], got {value!r}")
    for v in value:
        if not isinstance(v, int) or isinstance(v, bool):
            raise MXNetFormatError(f"{where}{what} must hold integers, got {value!r}")
    return value[0], value[1]


def parse_symbol(doc: Any, path: str | os.PathLike | None = None) -> Graph:
    """Build a :class:`Graph` from the decoded JSON of a symbol file."""
    where = f"{path}: " if path is not None else ""
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise MXNetFormatError(f"{where}not an MXNet symbol file (no 'nodes' list)")
    raw_nodes = doc["nodes"]
    if not raw_nodes:
        raise MXNetFormatError(f"{where}the graph has no nodes")
    nodes: list[Node] = []
    for i, raw in enumerate(raw_nodes):
        at = f"{where}node {i}"
        if not isinstance(raw, dict):
            raise MXNetFormatError(f"{at}: not an object")
        op = raw.get("op")
        name = raw.get("name")
        if not isinstance(op, str) or not isinstance(name, str):
            raise MXNetFormatError(f"{at}: 'op' and 'name' must be strings")
        attrs: dict[str, str] = {}
        for key in ("param", "attr", "attrs"):
            block = raw.get(key)
            if block is None:
                continue
            if not isinstance(block, dict):
                raise MXNetFormatError(f"{at} ({name!r}): {key!r} must be an object")
            for k, v in block.items():
                attrs[str(k)] = v if isinstance(v, str) else json.dumps(v)
        raw_inputs = raw.get("inputs", [])
        if not isinstance(raw_inputs, list):
            raise MXNetFormatError(f"{at} ({name!r}): 'inputs' must be a list")
        inputs = []
        for k, value in enumerate(raw_inputs):
            src, out = _entry(value, f"input {k}", f"{at} ({name!r}): ")
            if not 0 <= src < i:
                raise MXNetFormatError(
                    f"{at} ({name!r}): input {k} refers to node {src}, which is not an earlier node "
                    f"(valid: 0..{i - 1})"
                )
            if out < 0 or (nodes[src].is_variable and out != 0):
                raise MXNetFormatError(
                    f"{at} ({name!r}): input {k} refers to output {out} of node {nodes[src].name!r}, "
                    "which does not exist"
                )
            inputs.append((src, out))
        if op == "null" and inputs:
            raise MXNetFormatError(f"{at} ({name!r}): a variable (op null) cannot have inputs")
        nodes.append(Node(op=op, name=name, attrs=attrs, inputs=inputs))

    n = len(nodes)
    if "heads" in doc and doc["heads"] is not None:
        if not isinstance(doc["heads"], list) or not doc["heads"]:
            raise MXNetFormatError(f"{where}'heads' must be a non-empty list")
        heads = []
        for k, value in enumerate(doc["heads"]):
            src, out = _entry(value, f"head {k}", where)
            if not 0 <= src < n or out < 0:
                raise MXNetFormatError(f"{where}head {k} refers to node {src} output {out}, out of range (0..{n - 1})")
            heads.append((src, out))
    else:
        heads = [(n - 1, 0)]

    if doc.get("arg_nodes") is not None:
        arg_nodes = doc["arg_nodes"]
        if not isinstance(arg_nodes, list) or not all(
            isinstance(a, int) and not isinstance(a, bool) for a in arg_nodes
        ):
            raise MXNetFormatError(f"{where}'arg_nodes' must be a list of node indices")
        for a in arg_nodes:
            if not 0 <= a < n:
                raise MXNetFormatError(f"{where}arg_nodes entry {a} is out of range (0..{n - 1})")
            if not nodes[a].is_variable:
                raise MXNetFormatError(f"{where}arg_nodes entry {a} ({nodes[a].name!r}) is not a variable")
    else:
        arg_nodes = [i for i, node in enumerate(nodes) if node.is_variable]

    row_ptr = doc.get("node_row_ptr")
    if row_ptr is not None:
        if (
            not isinstance(row_ptr, list)
            or len(row_ptr) != n + 1
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in row_ptr)
            or any(b < a for a, b in zip(row_ptr, row_ptr[1:]))
        ):
            raise MXNetFormatError(f"{where}'node_row_ptr' must be {n + 1} non-decreasing integers")
        # with row pointers we know every node's output count: check references against them
        counts = [b - a for a, b in zip(row_ptr, row_ptr[1:])]
        for i, node in enumerate(nodes):
            for k, (src, out) in enumerate(node.inputs):
                if out >= counts[src]:
                    raise MXNetFormatError(
                        f"{where}node {i} ({node.name!r}): input {k} refers to output {out} of node "
                        f"{nodes[src].name!r}, which has {counts[src]} outputs"
                    )

    version = None
    gattrs = doc.get("attrs")
    if isinstance(gattrs, dict):
        v = gattrs.get("mxnet_version")
        if isinstance(v, list) and len(v) == 2 and isinstance(v[1], int):
            version = v[1]
        elif isinstance(v, int):
            version = v
    return Graph(
        nodes=nodes,
        heads=heads,
        arg_nodes=list(arg_nodes),
        mxnet_version=version,
        path=None if path is None else str(path),
        node_row_ptr=row_ptr,
    )


def load_symbol(path: str | os.PathLike) -> Graph:
    """Read an MXNet ``-symbol.json`` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MXNetFormatError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MXNetFormatError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise MXNetFormatError(f"{path}: JSON nested too deeply") from None
    return parse_symbol(doc, path)


def graph_to_json(graph: Graph, spelling: str = "attrs", triples: bool = True) -> dict:
    """Serialize a graph back to symbol-JSON form (for tests and stand-ins).

    ``spelling`` picks the attribute key (``attrs``, ``attr`` or ``param``); ``triples`` writes
    ``[node, output, 0]`` entries instead of 0.12-era ``[node, output]`` pairs.
    """
    if spelling not in ("attrs", "attr", "param"):
        raise ValueError(f"spelling must be attrs, attr or param, not {spelling!r}")

    def entry(e):
        return [e[0], e[1], 0] if triples else [e[0], e[1]]

    nodes = []
    for node in graph.nodes:
        d: dict[str, Any] = {"op": node.op, "name": node.name}
        if node.attrs:
            d[spelling] = dict(node.attrs)
        d["inputs"] = [entry(e) for e in node.inputs]
        nodes.append(d)
    doc = {"nodes": nodes, "arg_nodes": list(graph.arg_nodes), "heads": [entry(h) for h in graph.heads]}
    if graph.mxnet_version is not None:
        doc["attrs"] = {"mxnet_version": ["int", graph.mxnet_version]}
    return doc



class UnsupportedOperatorError(MXNetFormatError):
    """The graph uses an operator (or operator mode) this package cannot run or convert."""

    def __init__(self, op: str, node: str, detail: str = "", *, where: str = ""):
        self.op = op
        self.node = node
        msg = f"{where}unsupported MXNet operator {op!r} at node {node!r}"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)


def format_attr(value: Any) -> str:
    """An attribute value spelled the way MXNet writes it: ``(3, 3)``, ``True``, ``1e-05``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(str(int(v)) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, float):
        return repr(value)
    return str(value)


class SymbolBuilder:
    """Build MXNet graphs in code (tests, stand-ins): ``b.op("Convolution", "conv0", ["data",
    "conv0_weight"], kernel=(3, 3), num_filter=8)``.

    An input is a node index, an ``(index, output)`` pair, or a name: an existing node's name, or
    a new variable created on the spot (``"data"``, ``"conv0_weight"``).
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._index: dict[str, int] = {}

    def var(self, name: str, **attrs: Any) -> int:
        if name in self._index:
            raise ValueError(f"duplicate node name {name!r}")
        self.nodes.append(Node("null", name, {k: format_attr(v) for k, v in attrs.items()}, []))
        self._index[name] = len(self.nodes) - 1
        return self._index[name]

    def _entry(self, ref: Any) -> tuple[int, int]:
        if isinstance(ref, tuple):
            return int(ref[0]), int(ref[1])
        if isinstance(ref, int):
            return ref, 0
        if ref in self._index:
            return self._index[ref], 0
        return self.var(ref), 0

    def op(self, op: str, name: str, inputs: Iterable[Any], **attrs: Any) -> int:
        entries = [self._entry(r) for r in inputs]
        if name in self._index:
            raise ValueError(f"duplicate node name {name!r}")
        self.nodes.append(Node(op, name, {k: format_attr(v) for k, v in attrs.items()}, entries))
        self._index[name] = len(self.nodes) - 1
        return self._index[name]

    def graph(self, heads: Iterable[Any] | None = None, mxnet_version: int | None = 10901) -> Graph:
        hs = [self._entry(h) for h in heads] if heads is not None else [(len(self.nodes) - 1, 0)]
        nodes = [Node(n.op, n.name, dict(n.attrs), list(n.inputs)) for n in self.nodes]
        return Graph(
            nodes=nodes,
            heads=hs,
            arg_nodes=[i for i, n in enumerate(nodes) if n.is_variable],
            mxnet_version=mxnet_version,
        )


def save_symbol(path: str | os.PathLike, graph: Graph, spelling: str = "attrs", triples: bool = True) -> None:
    """Write ``graph`` as an MXNet ``-symbol.json`` (see :func:`graph_to_json`)."""
    Path(path).write_text(json.dumps(graph_to_json(graph, spelling, triples), indent=2), encoding="utf-8")
