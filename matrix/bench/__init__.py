"""Session throughput of a plugin's storage code, beside what the driver can do.

A plugin developer wants three answers per database: how fast is my storage
code, how close is it to what the driver itself can do, and did this change
make it slower. So every operation is measured twice in the same run, on the
same server, table and kind of rows: once through SQLAlchemy ORM sessions on
the plugin's own mapped classes, once with the raw DBAPI driver. The ORM
figure divided by the best driver figure is the fraction of the driver's
limit the storage code reaches.

- :mod:`~matrix.results.benchmark` (a foundation): the typed results,
  ``benchmark.json`` and the baseline comparison (stdlib only: reports and the
  gate read it cheaply);
- :mod:`~matrix.bench.discovery`: which of the plugin's mapped tables to use;
- :mod:`~matrix.engines.drivers`: the raw drivers and their fastest loads;
- :mod:`~matrix.bench.operations`: the eight operations, ORM and driver;
- :mod:`~matrix.bench.measure`: warm-up, rounds and figures, in the check process;
- :mod:`~matrix.bench.process`: the check process with the benchmark after its checks.

Nothing is imported here: the rest needs SQLAlchemy and the plugin's environment.
"""
