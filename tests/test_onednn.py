"""facezoo caps MindSpore's oneDNN at AVX2 without an environment variable OpenVINO would read."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import ctypes, importlib.util, os, pathlib
import facezoo
lib = sorted(pathlib.Path(importlib.util.find_spec('mindspore').submodule_search_locations[0], 'lib').glob('libdnnl.so*'))[0]
dnnl = ctypes.CDLL(str(lib))
print(facezoo.MINDSPORE_ONEDNN, '|', hex(dnnl.dnnl_get_effective_cpu_isa()), '|', os.environ.get('ONEDNN_MAX_CPU_ISA'))
"""


def _probe(**env_changes) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    env.update(env_changes)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [part.strip() for part in done.stdout.strip().splitlines()[-1].split("|")]


def test_import_caps_mindspores_onednn_and_leaves_the_environment_alone():
    said, effective, variable = _probe()
    assert said == "capped at AVX2"
    assert effective == "0x7"  # dnnl_cpu_isa_avx2
    assert variable == "None"  # OpenVINO's oneDNN reads this variable: it must stay unset


def test_a_users_own_setting_wins():
    said, effective, _ = _probe(ONEDNN_MAX_CPU_ISA="AVX512_CORE")
    assert said == "left to ONEDNN_MAX_CPU_ISA=AVX512_CORE"
    assert effective == "0x27"  # dnnl_cpu_isa_avx512_core, from the variable
