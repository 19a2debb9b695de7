"""Measuring: warm-up, rounds, figures. Runs in the check process.

The numbers are meant to be trusted: warm-up rounds are discarded, each
figure is the median of several rounds with its spread (min, max,
coefficient of variation), ORM and driver rounds alternate so that drift hits
both alike, and only the database work is timed. Statements are counted in
the warm-up only, since counting costs time.

:func:`run_benchmark` runs in the check process (:mod:`matrix.bench.process`)
after the checks, so the plugin is importable and its schema is at head.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

from matrix import masking
from matrix.bench.discovery import MappedTable, Storage
from matrix.bench.operations import BENCHMARKS, Benchmark, Context, Operation, Skipped, recorded
from matrix.engines import engine_of, error_text, hidden_cause
from matrix.protocol import Plugin
from matrix.results.benchmark import ORM, BenchmarkResult, Figure, OperationResult, Settings


def run_benchmark(plugin: Plugin, url: URL, schema: str, chosen: Settings) -> BenchmarkResult:
    """Measure every operation on one target; the check process sends the result on."""
    started = time.perf_counter()
    storage = Storage.discover(plugin.package, schema)
    database = engine_of(url)
    # One connection for both layers: a second server backend would land on
    # another CPU than the first, and the ratio would measure the scheduler.
    engine = sa.create_engine(database.url(url), poolclass=StaticPool)
    driver = database.bench_driver(engine)
    gc.collect()
    gc.freeze()  # the harness's and the plugin's long-lived objects: not the rounds' garbage
    try:
        context = Context(engine, driver, chosen, storage)
        operations = [measure(benchmark, context) for benchmark in BENCHMARKS]
    finally:
        gc.unfreeze()
        driver.close()
        engine.dispose()
    timed_s = sum(sum(f.seconds) for o in operations for f in o.figures)
    return BenchmarkResult(
        chosen,
        operations,
        table=_table_name(storage.plain),
        spatial_table=_table_name(storage.spatial),
        global_setting=_function_name(storage.global_setting),
        timed_s=round(timed_s, 3),
        wall_s=round(time.perf_counter() - started, 3),
    )


def measure(benchmark: Benchmark, ctx: Context) -> OperationResult:
    """One operation's figures, or why it was skipped or failed."""
    head = (benchmark.name, benchmark.title, benchmark.unit)
    try:
        operation = benchmark.build(ctx)
        figures = _rounds(benchmark, operation, ctx)
    except Skipped as reason:
        return OperationResult(*head, skipped=str(reason))
    except Exception as error:  # noqa: BLE001 - one operation's failure must not lose the rest
        error = hidden_cause(error)  # a failed ROLLBACK (3903) says nothing of the cause
        message = _described(error)
        try:
            ctx.driver.connection.rollback()
        except Exception as cleanup:  # noqa: BLE001 - the server ended the transaction or the link
            message += f" (the rollback after it failed too: {_described(cleanup)})"
        return OperationResult(*head, error=masking.mask(message))
    return OperationResult.measured(*head, operation.size, figures)


def _described(error: BaseException) -> str:
    """``Type: message``, the driver's message as text, and the statement it refused
    (its head and tail: where a long VALUES list ends, the clause refused may be)."""
    sql = " ".join((getattr(error, "statement", None) or "").split())
    if len(sql) > 500:
        sql = f"{sql[:240]} ... {sql[-240:]}"
    return f"{type(error).__name__}: {error_text(error)}" + (f" [SQL: {sql}]" if sql else "")


def _rounds(benchmark: Benchmark, operation: Operation, ctx: Context) -> list[Figure]:
    """Warm-up then measured rounds, ORM and driver alternating within each round."""
    seconds: dict[str, list[float]] = {layer.method: [] for layer in operation.layers}
    statements = None
    for number in range(ctx.settings.warmup + ctx.settings.rounds):
        for layer in operation.layers:
            operation.reset()
            if number >= ctx.settings.warmup:
                seconds[layer.method].append(layer.run())
            elif layer.layer == ORM:
                with recorded(ctx.engine) as sent:
                    layer.run()
                statements = len(sent) / operation.calls
            else:
                layer.run()
    return [
        Figure.from_seconds(
            benchmark.name,
            layer.layer,
            layer.method,
            benchmark.unit,
            operation.size,
            seconds[layer.method],
            statements if layer.layer == ORM else None,
        )
        for layer in operation.layers
    ]


def _table_name(mapped: MappedTable | None) -> str | None:
    return mapped.table.fullname if mapped else None


def _function_name(function: Callable[..., Any] | None) -> str | None:
    return f"{function.__module__}.{function.__name__}" if function else None
