"""The module classes a saved file can name, so that ``ln.load`` rebuilds any architecture.

Every Module subclass registers itself on definition (Module.__init_subclass__); ours under
their class name, users' under ``module:QualifiedName`` (imported on demand when loading).
"""
from __future__ import annotations

import importlib

_CLASSES: dict[str, type] = {}


def class_key(cls: type) -> str:
    """How a saved file names a module class: short for ours, module-qualified for users'."""
    if cls.__module__.startswith("lstm_native"):
        return cls.__qualname__
    return f"{cls.__module__}:{cls.__qualname__}"


def register(cls: type) -> None:
    _CLASSES[class_key(cls)] = cls


def build(config: dict):
    """A module (with fresh weights) from its ``to_config()``."""
    if not isinstance(config, dict) or "class" not in config:
        raise ValueError(f"a module config must be a dict with a 'class', got {type(config).__name__}")
    key = config["class"]
    if key not in _CLASSES and ":" in key:
        importlib.import_module(key.split(":", 1)[0])   # a user's module defines its classes on import
    if key not in _CLASSES:
        raise ValueError(f"unknown module class {key!r}: import the code that defines it before loading")
    return _CLASSES[key].from_config(config)
