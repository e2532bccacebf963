"""MindSpore's oneDNN is capped at AVX2 when MindSpore is first started, only on AVX-512 CPUs,
without an environment variable OpenVINO would read; `import facezoo` and `facezoo list` start
nothing at all."""

from __future__ import annotations

import os
import subprocess
import sys

from facezoo.mindspore_context import cpu_flags, plan

PROBE = """
import ctypes, importlib.util, os, pathlib
from facezoo.mindspore_context import mindspore, onednn_status
ms = mindspore()
lib = sorted(pathlib.Path(importlib.util.find_spec('mindspore').submodule_search_locations[0], 'lib').glob('libdnnl.so*'))[0]
dnnl = ctypes.CDLL(str(lib))
print(onednn_status(), '|', hex(dnnl.dnnl_get_effective_cpu_isa()), '|', os.environ.get('ONEDNN_MAX_CPU_ISA'))
"""

UNTOUCHED = """
import json, os, sys
before = dict(os.environ)
{code}
loaded = sorted(m for m in sys.modules if m == 'mindspore' or m.startswith('mindspore.'))
with open('/proc/self/maps') as maps:
    dnnl = any('libdnnl' in line for line in maps)
print(json.dumps({{"mindspore": loaded[:3], "libdnnl": dnnl, "environment": sorted(set(os.environ.items()) ^ set(before.items()))}}))
"""


def _env(**changes) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    env.update(changes)
    return env


def _probe(**env_changes) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE], env=_env(**env_changes), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return [part.strip() for part in done.stdout.strip().splitlines()[-1].split("|")]


def test_first_start_caps_mindspores_onednn_on_avx512_and_leaves_the_environment_alone():
    said, effective, variable = _probe()
    if "avx512f" in cpu_flags():
        assert said == "capped at AVX2 (AVX-512 CPU)"
        assert effective == "0x7"  # dnnl_cpu_isa_avx2
    else:
        assert said.startswith("not capped: the CPU has no AVX-512")
    assert variable == "None"  # OpenVINO's oneDNN reads this variable: it must stay unset


def test_a_users_own_setting_wins():
    said, effective, _ = _probe(ONEDNN_MAX_CPU_ISA="AVX512_CORE")
    assert said == "left to ONEDNN_MAX_CPU_ISA=AVX512_CORE"
    assert effective == "0x27"  # dnnl_cpu_isa_avx512_core, from the variable


def test_the_cap_is_only_planned_for_avx512_cpus(monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    assert plan({"avx2", "fma", "avx512f", "avx512bw"}) == (True, "capped at AVX2 (AVX-512 CPU)")
    wanted, why = plan({"avx2", "fma"})
    assert not wanted and "no AVX-512" in why


def test_import_facezoo_and_facezoo_list_start_nothing():
    """Neither MindSpore nor its libdnnl is loaded, and no environment variable changes."""
    import json

    for code in ("import facezoo, facezoo.registry, facezoo.sources; facezoo.registry.load_zoo(); facezoo.sources.frameworks()",
                 "import sys; sys.argv = ['facezoo', 'list']\nfrom facezoo.cli.main import app\ntry:\n    app()\n"
                 "except SystemExit:\n    pass"):
        done = subprocess.run([sys.executable, "-c", UNTOUCHED.format(code=code)], env=_env(), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        state = json.loads(done.stdout.strip().splitlines()[-1])
        assert state == {"mindspore": [], "libdnnl": False, "environment": []}, (code, state)
