"""A validated config block as one frozen object.

Validation (dfrobust.core.config) fills every default from the schema once;
after that the code trusts the block: `Settings` holds every key the schema
knows, read as attributes (`faces.frames.test`) or items, never with a
fallback (it has no `.get`). Nested blocks are Settings too, lists tuples, so
the whole block is immutable and hashable. `to_dict()` gives plain data back
(Snakemake params, provenance, JSON).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping


class Settings:
    """A read-only config block; `where` is its dotted key, for messages."""

    __slots__ = ("_values", "_where")

    def __init__(self, values: Mapping[str, Any], where: str):
        object.__setattr__(self, "_where", where)
        object.__setattr__(self, "_values", {k: _frozen(v, f"{where}.{k}") for k, v in values.items()})

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config block '{self._where}' has no key {key!r} "
                                 f"(it has: {', '.join(sorted(self._values))})") from None

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"config block '{self._where}' has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"config block '{self._where}' is read-only")

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self):
        return self._values.keys()

    def items(self):
        return self._values.items()

    def values(self):
        return self._values.values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Settings):
            return self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self) -> str:
        return f"Settings({self._where}: {self.to_dict()!r})"

    def __reduce__(self):  # picklable (data-loader workers, multiprocessing)
        return (Settings, (self.to_dict(), self._where))

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self._values.items()}


def _frozen(value: Any, where: str) -> Any:
    if isinstance(value, Settings):
        return value
    if isinstance(value, Mapping):
        return Settings(value, where)
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v, f"{where}.{i}") for i, v in enumerate(value))
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Settings):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
