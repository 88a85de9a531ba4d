"""The backends juno-bridge runs models with: the core's registry, as Python sees it."""
from __future__ import annotations

from dataclasses import dataclass

from juno_bridge import _core


@dataclass(frozen=True)
class BackendInfo:
    """One backend of the core's registry. ``plugin`` is "" for a backend built into the core, else the
    plugin library it needs (``plugin_path`` where it was found, "" when it was not built); ``extra`` is
    the pip extra that installs its library."""

    name: str
    aliases: tuple[str, ...]
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    directory_marker: str
    plugin: str
    extra: str
    description: str
    plugin_path: str

    @property
    def available(self) -> bool:
        """Built into the core, or its plugin was built."""
        return not self.plugin or bool(self.plugin_path)


def backends() -> list[BackendInfo]:
    """Every backend of the core's registry, the default (ONNX Runtime) first."""
    return [BackendInfo(**b) for b in _core.backends()]
