"""The benchmark tool: latency and throughput of zoo models on each inference backend.

An application on top of the library, kept out of ``deploy`` (which it uses, as it uses
``quantization``) so the subpackages depend in one direction only. Measuring (``measure``, with the
backends in ``backends``) is apart from report writing (``report``, ``tables``): the CSV a run
writes is the record, from which the Markdown and the plot can be written again without timing.

    from ghostzoo.bench import benchmark, write_report, environment, TimingBudget
    rows = benchmark(["ghostnet_100"], ["eager", "onnxruntime"], [1, 32])
"""

from .backends import BACKENDS, DEFAULT_BACKENDS
from .command import BenchmarkRun, run_benchmark
from .measure import (
    COLUMNS,
    BenchmarkRow,
    TimingBudget,
    benchmark,
    calibration_images,
    environment,
    machine_description,
    processor_name,
    resolve_models,
    time_runs,
)
from .report import commands, markdown_report, merge_rows, plot_latency, read_rows, write_report
from .tables import markdown_table, save_figure, write_csv

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKENDS",
    "COLUMNS",
    "BenchmarkRow",
    "TimingBudget",
    "benchmark",
    "calibration_images",
    "environment",
    "machine_description",
    "processor_name",
    "resolve_models",
    "time_runs",
    "commands",
    "markdown_report",
    "merge_rows",
    "plot_latency",
    "read_rows",
    "write_report",
    "BenchmarkRun",
    "run_benchmark",
    "markdown_table",
    "save_figure",
    "write_csv",
]
