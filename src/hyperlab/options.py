"""The options of a class a config builds, declared once, by the class itself.

A datamodule, network, optimizer or scheduler takes its options as constructor arguments: their names, types and
which are required are read from its signature, and their ranges from its `check_options(options)` (or, for a
class of another library, a function in a table beside the code that builds it, e.g. tasks.optimizers). hyperlab's
own networks and datamodules declare theirs in a dataclass instead, their `options` (in hyperlab.networks.options
and hyperlab.data.options, which import no torch), that they build themselves from: the config's check finds it by
the `_target_` alone (`declared_options`) and refuses a wrong value before torch is imported. The YAML option in
`conf/<group>/` holds the values and a comment on each; nothing else repeats them. `check_options` refuses a key
the class does not take (naming the nearest), a missing one, a value of the wrong type and one out of range, each
naming the key and what is allowed, before anything is built.
"""

import collections.abc
import dataclasses
import difflib
import importlib
import importlib.util
import inspect
import math
import os
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

from hyperlab.errors import ConfigError


class OutOfRange(ValueError):
    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(key)
        self.key, self.value, self.allowed = key, value, allowed


class Options(dict):
    """A class's option values as its `check_options` reads them (`options.lr`), with `require`."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def require(self, key: str, ok: bool, allowed: str) -> None:
        """Refuse `key`'s value, saying what is `allowed`, unless `ok`."""
        if not ok:
            raise OutOfRange(key, self.get(key), allowed)


RangeCheck = Callable[[Options], None]


def declaration(cls: type) -> type:
    """What declares the options `cls` takes: its own `options` dataclass (hyperlab's networks and datamodules), else
    the class itself (its constructor's signature and `check_options`)."""
    return vars(cls).get("options", cls)


def declared_options(target: Any) -> type | None:
    """The dataclass declaring the options of the hyperlab class `target` names, `hyperlab.<package>.<Class>`: the
    `<Class>Options` of `hyperlab.<package>.options`, found without importing the class's module (nor torch). None
    for any other class: its options are read from the class, once it is imported."""
    if not isinstance(target, str) or target.count(".") != 2 or not target.startswith("hyperlab."):
        return None
    package, _, name = target.rpartition(".")
    spec = importlib.util.find_spec(package)  # (imports `hyperlab` alone: a module is not looked into)
    if spec is None or spec.submodule_search_locations is None:
        return None
    if importlib.util.find_spec(f"{package}.options") is None:  # (imports the package, which imports no torch)
        return None
    declared = getattr(importlib.import_module(f"{package}.options"), f"{name}Options", None)
    return declared if isinstance(declared, type) and dataclasses.is_dataclass(declared) else None


def parameters(cls: type, filled: Iterable[str] = ()) -> dict[str, inspect.Parameter]:
    """The keyword arguments `cls` takes (through the `**kwargs` it passes to its base classes, up to one whose
    `options` dataclass declares them), but the `filled` ones, which the code fills in (a network's input_shape, an
    optimizer's params), and those it gives its base class itself (its `fixed_options`)."""
    found: dict[str, inspect.Parameter] = {}
    for klass in map(declaration, cls.__mro__):
        if "__init__" not in vars(klass):
            continue
        own = inspect.signature(klass.__init__).parameters.values()
        hints = typing.get_type_hints(klass.__init__)
        for parameter in own:
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY) and parameter.name != "self":
                found.setdefault(parameter.name, parameter.replace(annotation=hints.get(parameter.name, Any)))
        if not any(parameter.kind is parameter.VAR_KEYWORD for parameter in own):
            break
    skipped = {*filled, *getattr(getattr(cls, "options", cls), "fixed_options", ())}  # (an inherited declaration's too)
    return {name: parameter for name, parameter in found.items() if name not in skipped}


def check_options(
    cls: type,
    values: dict[str, Any],
    where: str,
    filled: Iterable[str] = (),
    ranges: RangeCheck | None = None,
    name: str | None = None,
) -> None:
    """Refuse `values` (a config node's, `_target_` aside) that `cls` (or the dataclass declaring its options) would
    not take, naming `<where>.<key>` and the class (`name`: as the config names it)."""
    taken = parameters(cls, filled)
    for key in values:
        if key != "_target_" and key not in taken:
            near = difflib.get_close_matches(key, taken, n=1)
            hint = f"did you mean {where}.{near[0]}? " if near else ""
            named = name or cls.__name__
            raise ConfigError(f"{where}.{key} is not an option of {named}: {hint}expected one of {list(taken)}")
    for name, parameter in taken.items():
        if parameter.default is parameter.empty and name not in values:
            raise ConfigError(f"{where}.{name} is required: give it on the command line ({where}.{name}=...)")
    for key, value in values.items():
        if key in taken and not fits(value, taken[key].annotation):
            raise ConfigError(f"{where}.{key}={value!r} is not allowed: expected {type_name(taken[key].annotation)}")
    check = ranges or getattr(declaration(cls), "check_options", None)
    if check is None:
        return
    given = {name: parameter.default for name, parameter in taken.items() if parameter.default is not parameter.empty}
    try:
        check(Options({**given, **{key: value for key, value in values.items() if key != "_target_"}}))
    except OutOfRange as error:
        raise ConfigError(f"{where}.{error.key}={error.value!r} is not allowed: expected {error.allowed}") from None


def fits(value: Any, annotation: Any) -> bool:
    """Whether a plain value (from a config or a file) has the type an annotation names, without conversion: int,
    float (an int too), str (a path too), bool, None, Literal, unions, list/tuple/Sequence and dict of them, any
    other class by isinstance (a Tensor is never a config's value)."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is dict or origin is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type) and issubclass(annotation, os.PathLike):
        return type(value) is str
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, option) for option in typing.get_args(annotation))
    if origin in (list, tuple, collections.abc.Sequence):
        items = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and items and items[-1] is not Ellipsis:
            return len(value) == len(items) and all(fits(v, item) for v, item in zip(value, items, strict=True))
        return not items or all(fits(v, items[0]) for v in value)
    if annotation is float:
        return type(value) in (int, float) and math.isfinite(value)
    if annotation is type(None) or annotation is None:
        return value is None
    if annotation in (int, str, bool):
        return type(value) is annotation  # (True is no int, 1 no bool)
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def type_name(annotation: Any) -> str:
    """`int`, `list[int] | None`: an annotation as a user reads it."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace(" | torch.Tensor", "").replace("torch.", "")


def is_text_encoding(name: str) -> bool:
    """Whether Python knows `name` as a text encoding (utf-8, latin-1, cp1252, ...): `str.encode` refuses a codec that
    is not one (base64, rot13: LookupError) as `open` does, and one that can encode nothing ("undefined")."""
    try:
        "".encode(name)
    except (LookupError, ValueError):  # (ValueError: a name with a NUL in it; UnicodeError is one)
        return False
    return True


def table_reading_checks(sep: str | None, file_encoding: str, decimal: str) -> list[tuple[str, bool, str]]:
    """(key, ok, what is allowed) for the options that say how a table file is read, which `data=csv` and
    hyperlab-predict both take."""
    return [
        ("sep", sep is None or len(sep) == 1 or sep == "\\t", "null (sniffed) or one character, e.g. ';' or '\\t'"),
        ("file_encoding", is_text_encoding(file_encoding), "a text encoding Python knows, e.g. utf-8, latin-1, cp1252"),
        ("decimal", decimal in (".", ","), "'.' or ','"),
    ]


def separator(sep: str | None) -> str | None:
    """The separator an option gives: `\\t` typed on a command line (data.sep='\\t') is a tab."""
    return "\t" if sep == "\\t" else sep


def sorted_values(values: set[str]) -> list[str]:
    """Values as text, numbers in numeric order, other text in alphabetical order."""
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)
