"""Latency and throughput of converted models, and the suite that compares them all.

    from facezoo.benchmark import BenchmarkCase, run_case
    result = run_case(BenchmarkCase("arcface", "converted/arcface/FP32/arcface.xml", "openvino", "FP32", "openvino"))
"""

from facezoo.benchmark.flops import FlopCount, count_flops
from facezoo.benchmark.machine import MachineInfo, describe_machine
from facezoo.benchmark.peak import PeakMeasurement, measure_fp32_peak
from facezoo.benchmark.results import BenchmarkCase, BenchmarkResult, Latency
from facezoo.benchmark.timing import run_case

__all__ = [
    "BenchmarkCase",
    "BenchmarkResult",
    "FlopCount",
    "Latency",
    "MachineInfo",
    "PeakMeasurement",
    "count_flops",
    "describe_machine",
    "measure_fp32_peak",
    "run_case",
]
