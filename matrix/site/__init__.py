"""The site release rehearsal: a whole Peek release upgraded in one database.

A Peek site deploys a release as a whole: the platform and every plugin in
one new virtual environment, then the logic service migrates every storage
plugin, one after another, in one database. The harness's other checks look
at one plugin; this package looks at the site:

- :mod:`~matrix.site.sitefile`: the site file (the plugins in load order,
  this release and the one each upgrades from, their undeclared extras);
- :mod:`~matrix.site.environment`: one environment for the site (every
  plugin's requirements resolved together, pins that conflict named), and an
  environment of its own for each previous release;
- :mod:`~matrix.site.previous`: the previous release installed with its own
  scripts, by plain ``alembic upgrade head`` in its own environment;
- :mod:`~matrix.site.rehearsal`: the steps in the site's check process (fill,
  upgrade plugin by plugin as Peek does, observe, roll back);
- :mod:`~matrix.site.checks`: the site checks, one small function each;
- :mod:`~matrix.site.results`, :mod:`~matrix.site.reports`: what was found,
  as compat.json, compat.md, junit.xml and index.html;
- :mod:`~matrix.site.runner`: the run, target by target;
- :mod:`~matrix.site.gate`: the release gate over a site report.
"""
