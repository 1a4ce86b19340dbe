"""JSON round trip of the config dataclasses (one implementation for every stage).

:class:`JsonConfig` gives a frozen dataclass :meth:`~JsonConfig.to_dict` /
:meth:`~JsonConfig.from_dict`, :meth:`~JsonConfig.to_json` /
:meth:`~JsonConfig.from_json` and :meth:`~JsonConfig.save` /
:meth:`~JsonConfig.load` (atomic). Tuples are written as JSON lists and
read back as tuples; unknown keys are an error of the class's
``json_error`` type (a :class:`~mdllm_kit.errors.MdllmError`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .atomic import atomic_write_json
from .errors import MdllmError

__all__ = ["JsonConfig"]

_T = TypeVar("_T", bound="JsonConfig")


class JsonConfig:
    """Mixin of a config dataclass: JSON round trip, validated again by ``__post_init__`` on the way in."""

    #: Error raised for unknown keys, JSON that is not an object, or text that is not JSON.
    json_error: ClassVar[type[MdllmError]] = MdllmError

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of the fields (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls: type[_T], data: dict[str, Any]) -> _T:
        """Build from :meth:`to_dict` output (lists become tuples); unknown keys are an error."""
        if not isinstance(data, dict):
            raise cls.json_error(f"{cls.__name__} JSON must be an object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise cls.json_error(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}; "
                                 f"known fields: {', '.join(sorted(names))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict` (keys sorted, indented)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls: type[_T], text: str) -> _T:
        """Inverse of :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise cls.json_error(f"{cls.__name__} JSON is not valid: {exc}") from exc
        return cls.from_dict(data)

    def replace(self: _T, **changes: Any) -> _T:
        """Copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (atomically)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[_T], path: str | os.PathLike) -> _T:
        """Read a file written by :meth:`save`."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise cls.json_error(f"cannot read {path} ({exc.strerror or exc}); pass a file written by .save()") from exc
        return cls.from_json(text)
