"""Kubernetes value formats the settings check: resource quantities and DNS labels."""

from __future__ import annotations

from decimal import Decimal

# Kubernetes resource.Quantity, as its OpenAPI schema spells it.
QUANTITY = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_SUFFIXES: dict[str, int | Decimal] = {  # a quantity's decimal (SI) and binary suffixes
    "": 1,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    **{s: 10 ** (3 * i) for i, s in enumerate("kMGTPE", start=1)},
    **{f"{s}i": 2 ** (10 * i) for i, s in enumerate("KMGTPE", start=1)},
}


def quantity(value: str) -> Decimal:
    """A Kubernetes quantity ("500m", "4Gi", "1e3") as a number, to compare two of them."""
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and value.endswith(suffix):
            return Decimal(value[: -len(suffix)]) * _SUFFIXES[suffix]
    return Decimal(value)  # plain or exponent notation
