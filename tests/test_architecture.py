"""The package's layers, declared once in pyproject.toml ([tool.importlinter]), held by import-linter.

Two contracts: the layers point down (every import, at module level or inside a function, goes to
a layer below; siblings joined by "|" never import each other; every top-level module belongs to
a layer), and no module imports another that imports it back, in any package. The tests below
also show that the contracts can fail: an import that points up, a cycle, and a package given no
layer each break them, on the real import graph and on a copy of the source tree.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application.use_cases import read_user_options
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.layers import LayersContract

REPO = Path(__file__).resolve().parents[1]
CONTRACT_TYPES = {"layers": LayersContract, "acyclic_siblings": AcyclicSiblingsContract}


@pytest.fixture(scope="module")
def options():
    configuration.configure()  # import-linter's readers, as its command line sets them up
    return read_user_options(str(REPO / "pyproject.toml"))


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("facezoo", exclude_type_checking_imports=True, cache_dir=None)


def _check(options, graph, contract_id: str):
    (contract_options,) = [c for c in options.contracts_options if c["id"] == contract_id]
    contract = CONTRACT_TYPES[contract_options["type"]](
        name=contract_options["name"], session_options=options.session_options, contract_options=contract_options)
    return contract.check(copy.deepcopy(graph), verbose=False)


def _layers(options) -> list[str]:
    (layers,) = [c["layers"] for c in options.contracts_options if c["id"] == "layers"]
    return layers


def test_the_package_keeps_its_layers_and_has_no_cycles(options, graph):
    assert {c["id"] for c in options.contracts_options} == {"layers", "acyclic"}
    for contract_id in ("layers", "acyclic"):
        check = _check(options, graph, contract_id)
        assert check.kept, (contract_id, check.metadata)


def test_the_layers_put_the_conversion_above_sources_and_the_graph_tools_below(options):
    order = [layer.split(" | ") for layer in _layers(options)]
    position = {name: index for index, names in enumerate(order) for name in names}
    assert position["conversion"] < position["quantization"] < position["validation"] < position["runtime"]
    assert position["runtime"] < position["sources"] < position["converters"] < position["registry"]
    assert position["registry"] < position["tasks"]  # the registry checks task_type against the task table
    assert {"serving", "batch", "repository"} == set(order[position["serving"]])


def test_imports_inside_functions_are_in_the_graph(graph):
    # conversion.pipeline imports the ONNX tools inside _export, and the MindSpore backend its
    # context inside __init__: the contracts see both.
    assert graph.direct_import_exists(importer="facezoo.conversion.pipeline", imported="facezoo.converters.onnx_graph")
    assert graph.direct_import_exists(importer="facezoo.runtime.backends", imported="facezoo.mindspore_context")


@pytest.mark.parametrize("importer, imported", [
    ("facezoo.registry", "facezoo.cli.main"),  # the base reaching for the top
    ("facezoo.runtime.model", "facezoo.validation.loop"),  # one layer up
    ("facezoo.serving.models", "facezoo.batch.job"),  # independent siblings
    ("facezoo.tasks.recognition", "facezoo.runtime"),  # the task table under the runtime
])
def test_an_import_that_points_up_breaks_the_layers(options, graph, importer, imported):
    broken = copy.deepcopy(graph)
    broken.add_import(importer=importer, imported=imported)
    check = _check(options, broken, "layers")
    assert not check.kept


def test_a_cycle_between_modules_breaks_the_acyclic_contract(options, graph):
    broken = copy.deepcopy(graph)
    broken.add_import(importer="facezoo.runtime.devices", imported="facezoo.runtime.backends")
    check = _check(options, broken, "acyclic")
    assert not check.kept
    assert "facezoo.runtime" in check.metadata["cycle_breakers_by_package"]


def test_a_package_without_a_layer_breaks_the_layers(options, graph):
    broken = copy.deepcopy(graph)
    broken.add_module("facezoo.galleries")
    broken.add_import(importer="facezoo.galleries", imported="facezoo.runtime")
    assert not _check(options, broken, "layers").kept


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory):
    """facezoo's source and pyproject.toml, copied: edited below as a contributor would edit them."""
    root = tmp_path_factory.mktemp("architecture")
    shutil.copytree(REPO / "facezoo", root / "facezoo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_lint_imports_fails_when_a_source_file_gains_an_import_inside_a_function_that_points_up(source_copy):
    clean = _lint(source_copy)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    registry = source_copy / "facezoo" / "registry.py"
    original = registry.read_text(encoding="utf-8")
    try:
        registry.write_text(original + "\n\ndef _late():\n    from facezoo.conversion import convert_model\n\n"
                            "    return convert_model\n", encoding="utf-8")
        broken = _lint(source_copy)
    finally:
        registry.write_text(original, encoding="utf-8")
    assert broken.returncode != 0
    assert "facezoo.registry -> facezoo.conversion" in broken.stdout, broken.stdout
