"""The site checks: names, theories, order. Stdlib only, like :mod:`matrix.catalogue`.

Each check judges every plugin of the site on one target; a plugin's result
for a check is a :class:`~matrix.results.CheckResult` like a plugin check's.
``upgrade_only`` checks judge an upgrade from the previous release: a plugin
installed fresh at this release (the site file says why) has none, so they
are ``not_run`` for it and do not count against the site.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SiteCheckInfo:
    name: str
    theory: str
    upgrade_only: bool = False


SITE_CHECKS: tuple[SiteCheckInfo, ...] = (
    SiteCheckInfo(
        "site_upgrade",
        "Every plugin, upgraded in load order in its own transaction, reaches its head.",
        upgrade_only=True,
    ),
    SiteCheckInfo(
        "site_isolation",
        "No plugin's upgrade changes another plugin's schema or rows.",
    ),
    SiteCheckInfo(
        "site_matches_fresh",
        "After the upgrade, every plugin's schema equals a fresh install of this release "
        "in the same site.",
        upgrade_only=True,
    ),
    SiteCheckInfo(
        "site_rows_kept",
        "The rows written at the previous release are all still there, unchanged.",
        upgrade_only=True,
    ),
    SiteCheckInfo(
        "site_window",
        "The upgrade's time per plugin and its exclusive locks on tables with rows stay "
        "within the policy's [cost].",
    ),
    SiteCheckInfo(
        "site_rollback",
        "Downgraded in reverse load order to the previous head, every plugin has the "
        "previous release's fresh schema and its rows.",
        upgrade_only=True,
    ),
)

SITE_BY_NAME = {info.name: info for info in SITE_CHECKS}
SITE_CHECK_NAMES = tuple(info.name for info in SITE_CHECKS)
