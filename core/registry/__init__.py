"""Registry of dwellings, households, occupancy, devices and their bindings."""

from core.registry.errors import (
    DuplicateDevice,
    InvalidDevice,
    RegistryError,
    UnknownDevice,
    UnknownHousehold,
)
from core.registry.service import Registry

__all__ = [
    "DuplicateDevice",
    "InvalidDevice",
    "Registry",
    "RegistryError",
    "UnknownDevice",
    "UnknownHousehold",
]
