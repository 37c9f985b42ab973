"""Registry errors: one small hierarchy, translated at the HTTP/CLI boundary."""


class RegistryError(Exception):
    """Base class for every registry refusal."""


class UnknownHousehold(RegistryError):
    """A household id that the registry does not hold."""


class DuplicateDevice(RegistryError):
    """A device id that is already registered (PROTOCOL.md: ids are unique)."""


class InvalidDevice(RegistryError):
    """A device id or kind that PROTOCOL.md does not allow."""


class UnknownDevice(RegistryError):
    """A device id that the registry does not hold."""


class UnknownPlace(RegistryError):
    """A dwelling or collection point id that the registry does not hold."""


class InvalidCommissioning(RegistryError):
    """A commissioning request that does not fit the device (wrong place, bad value)."""
