"""Where tariffs come from: the territory's own files, then the bundled examples.

The territory keeps its tariff files in ``<data_dir>/tariffs/<name>.toml`` (one per
territory and year, docs/billing.md); a name there shadows a bundled example of the
same name. Names are plain identifiers, never paths, so an HTTP caller cannot make
Foyer read an arbitrary file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from billing import tariff as tariff_mod
from billing.errors import TariffError
from billing.model import Tariff

NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class TariffBook:
    def __init__(self, folder: Path | None) -> None:
        self._folder = folder

    def _own(self) -> dict[str, Path]:
        if self._folder is None or not self._folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(self._folder.glob("*.toml")) if NAME.fullmatch(p.stem)}

    def names(self) -> list[str]:
        own = self._own()
        return sorted(own) + [n for n in tariff_mod.bundled_names() if n not in own]

    def get(self, name: str) -> Tariff:
        """The tariff called ``name``; TariffError if the name is not one of ``names()``."""
        if not NAME.fullmatch(name) or ".." in name:
            raise TariffError(name, "", "not a tariff name")
        own = self._own()
        if name in own:
            return tariff_mod.load(own[name])
        return tariff_mod.bundled(name)

    def ref(self, name: str) -> str:
        """What ``billing.service.read_tariff`` reads for ``name``: the territory's file
        path, else the bundled name; TariffError if the name is not one of ``names()``."""
        if not NAME.fullmatch(name) or ".." in name:
            raise TariffError(name, "", "not a tariff name")
        own = self._own()
        if name in own:
            return str(own[name])
        if name not in tariff_mod.bundled_names():
            raise TariffError(name, "", f"no such tariff (known: {', '.join(self.names())})")
        return name
