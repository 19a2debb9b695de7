"""The plugin under test, as the check process needs it: where to import it from.

Stdlib only: this travels from the harness to the check process (which runs
in the plugin's own environment) as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Plugin:
    """A Peek storage plugin, ready to import from ``import_root``.

    ``import_root`` is the folder that holds the package: the site-packages
    of the plugin's environment, or the folder around a package used in
    place. ``python`` is the interpreter of that environment.
    """

    package: str
    version: str
    import_root: Path
    alembic_dir: Path
    source: str  # wheel | sdist | requirement | project | in-place
    python: Path | None = None
    wheel: Path | None = None
    wheel_sha256: str | None = None
    distribution: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {k: None if v is None else str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str | None]) -> Plugin:
        paths = {"import_root", "alembic_dir", "python", "wheel"}
        return cls(
            **{
                key: (Path(value) if key in paths and value is not None else value)
                for key, value in data.items()
                if key in cls.__dataclass_fields__
            }
        )
