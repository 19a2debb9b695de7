"""Providers: docker, native and external, and how ``auto`` picks one."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL

from matrix.define.targets import Target
from matrix.errors import HarnessError
from matrix.provide.base import Database, Provider

if TYPE_CHECKING:  # images imports the Docker SDK; only the docker provider needs it
    from matrix.provide.images import BuildPlace

__all__ = ["Database", "Provider", "ProviderSet"]


@dataclass
class ProviderSet:
    """The providers of one run, created once and shared by its cells."""

    run_id: str
    requested: str = "auto"
    keep: bool = False
    docker_network: str | None = None
    allow_build: bool = True
    external_urls: dict[str, URL] = field(default_factory=dict)
    pg_root: Path = Path("/usr/lib/postgresql")
    state_dir: Path | None = None
    image_place: BuildPlace | None = None
    # Durable servers (fsync on) for a run that times its migrations (migration_cost):
    # the others are thrown away with their data and need no durability.
    durable: bool = False

    def __post_init__(self) -> None:
        self._made: dict[str, Provider] = {}
        self._making = threading.Lock()

    def get(self, name: str) -> Provider:
        """One provider per name for the run: cells ask at once, and close() must see it."""
        with self._making:
            if name not in self._made:
                self._made[name] = self._make(name)
            return self._made[name]

    def choose(self, target: Target) -> tuple[Provider | None, str]:
        """The provider for a target, or None and every reason none could serve.

        ``auto`` takes the first of the target's providers that can serve it
        here, in the order the matrix lists them (docker before native).
        """
        if self.requested == "auto":
            names = list(target.providers)
        elif self.requested in target.providers:
            names = [self.requested]
        else:
            return None, (
                f"the matrix does not allow provider {self.requested!r} for "
                f"{target.id} (allowed: {', '.join(target.providers)})"
            )
        reasons = []
        for name in names:
            provider = self.get(name)
            reason = provider.unavailable_reason(target)
            if reason is None:
                return provider, ""
            reasons.append(f"{name}: {reason}")
        return None, "; ".join(reasons)

    def close(self) -> None:
        """Close every provider, even when one of them fails to."""
        failures = []
        for provider in list(self._made.values()):
            try:
                provider.close()
            except Exception as error:  # noqa: BLE001 - the others must still close
                failures.append(f"{provider.name}: {error}")
        if failures:
            raise HarnessError(
                f"Cleaning up after the run failed ({'; '.join(failures)}).",
                "Rerun: the next run reaps the containers and native servers a run left; "
                "an external server's throwaway matrix_* databases are dropped by hand.",
            )

    def _make(self, name: str) -> Provider:
        if name == "docker":
            from matrix.provide.docker import DockerProvider

            return DockerProvider(
                self.run_id,
                network=self.docker_network,
                keep=self.keep,
                allow_build=self.allow_build,
                durable=self.durable,
                **({"image_place": self.image_place} if self.image_place else {}),
            )
        if name == "native":
            from matrix.provide.native import NativeProvider

            return NativeProvider(self.run_id, self.pg_root, self.state_dir, self.durable)
        from matrix.provide.external import ExternalProvider

        return ExternalProvider(self.external_urls)
