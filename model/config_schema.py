"""Typed configs from plain data: the one coercion rule and the one error type of every config of the
project (the network's, model/config.py, and training's, model/training/config.py; docs/design.md, "Configs").

`build(cls, data)` turns nested dicts/lists/scalars (a YAML file, `key=value` overrides, a checkpoint's
stored config) into dataclass `cls`, field by field after its type hints:

    dataclass        a mapping; unknown keys are an error; a missing key keeps the default (or, with
                     `base=`, that instance's value: nested sections merge field by field). A class with
                     a `SHORTHAND` class variable also takes a bare string s as {SHORTHAND: s}.
    bool             true or false only ('yes', 1 and 'true' are errors)
    int, float       YAML 1.2 numbers (`parse_number`): 3, 3.0 and '3' for an int; '3e-4', '.inf' for a float
    str              a string only (a number is an error: quote it)
    Literal[...]     one of the choices (int choices also from '18'; True is not 1)
    tuple[X, ...]    a list or tuple of X (tuple[X, Y] checks the length); list[X] likewise, as a list
    X | None         None (YAML null) or an X
    dict[str, Any]   a mapping, kept as is (validated by whoever reads it); Any: kept as is

Every failure is a `ConfigError` (a ValueError) whose message is `SOURCE: dotted.key: problem`, where the
problem names the bad value and what is allowed. YAML text is read by YAML 1.2's core schema (`load_yaml`,
`parse_yaml_value`), not PyYAML's YAML 1.1: '3e-4' is a number, 'yes'/'on' are strings, '010' is ten.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import types
import typing
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A config key or value that does not fit the schema.

    key: dotted path of the offending key ("model.overrides.roi.size", "data.train[1].weight"; "" = root)
    problem: what is wrong, naming the bad value and what is allowed
    source: where the data came from (a file, an override), or None
    """

    def __init__(self, key: str, problem: str, source: str | None = None) -> None:
        self.key, self.problem, self.source = key, problem, source
        super().__init__(": ".join(part for part in (source, key, problem) if part))

    def __reduce__(self):  # pickles with its fields (raised in a worker process, read in the parent)
        return ConfigError, (self.key, self.problem, self.source)

    def at(self, source: str | None) -> ConfigError:
        """The same error naming `source` (a file, an override); an error that names one keeps it."""
        return self if self.source or not source else ConfigError(self.key, self.problem, source)


def join_key(prefix: str, name: str) -> str:
    """Dotted key path: join_key("model", "preset") = "model.preset"; list items keep their brackets."""
    if not prefix or not name:
        return prefix or name
    return prefix + name if name.startswith("[") else f"{prefix}.{name}"


# ---------------------------------------------------------------------------------------------- numbers
# YAML 1.2 core-schema numbers. PyYAML follows YAML 1.1, which reads "3e-4" (no dot) as text: every value
# of an int or float field goes through parse_number, so a number written either way, in a file, in a
# dict or as a key=value override, becomes the same float.
_YAML12_INT = re.compile(r"[-+]?[0-9]+")
_YAML12_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_YAML12_SPECIAL = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


def parse_number(tp: type, value: Any, where: str) -> int | float:
    """`value` as an int or float field at key path `where`, by YAML 1.2's rules: numbers (not booleans) and
    strings that YAML 1.2 reads as numbers ('3e-4', '.inf'); a whole float for an int field. ConfigError
    naming `where` otherwise."""
    if isinstance(value, str):
        text = value.strip()
        if _YAML12_INT.fullmatch(text):
            value = int(text)
        elif tp is float and _YAML12_FLOAT.fullmatch(text):
            value = float(text)
        elif tp is float and text.lower() in _YAML12_SPECIAL:
            value = _YAML12_SPECIAL[text.lower()]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(where, f"expected a number, got {value!r}")
    if tp is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(where, f"expected a whole number, got {value!r}")
        return int(value)
    return float(value)


# ---------------------------------------------------------------------------------------------- YAML 1.2
class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema scalars: true/false, decimal ints, 1.2 floats, null."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _yaml12_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)  # "010" is ten (YAML 1.1: eight)


def _yaml12_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node).lower()
    return _YAML12_SPECIAL[text] if text in _YAML12_SPECIAL else float(text)


def _yaml12_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return loader.construct_scalar(node).lower() == "true"


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _yaml12_int)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _yaml12_float)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _yaml12_bool)


def parse_yaml_value(text: str, where: str = "") -> Any:
    """A `key=value` override's value as YAML 1.2: 1e-4, true, [1, 2], {path: a}, null, strings."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass: no tags that build objects
    except yaml.YAMLError as err:
        raise ConfigError(where, f"{text!r} is not a YAML value ({' '.join(str(err).split())})") from None


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML 1.2 config file as a mapping ({} when empty); ConfigError naming the file otherwise."""
    with open(path) as fh:
        try:
            data = yaml.load(fh, Loader=_Yaml12Loader)  # a SafeLoader subclass: no tags that build objects
        except yaml.YAMLError as err:
            raise ConfigError("", f"not valid YAML: {' '.join(str(err).split())}", str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", f"expected a mapping at the top level, got {type(data).__name__}", str(path))
    return data


# ---------------------------------------------------------------------------------------------- building
@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp: Any) -> str:
    """A type as the error messages name it."""
    if dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    if typing.get_origin(tp) is Literal:
        return f"one of {list(typing.get_args(tp))}"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def choose(value: Any, choices: typing.Iterable[Any], key: str, what: str | None = None) -> Any:
    """`value` if it is one of `choices` (bool and int never stand for each other), else ConfigError listing
    them ("unknown `what` ..." when named). The one check of every named choice: Literal fields, presets,
    ablations."""
    choices = list(choices)
    if all(isinstance(c, int) and not isinstance(c, bool) for c in choices) and isinstance(
        value, str | float
    ):
        try:
            value = parse_number(int, value, key)
        except ConfigError:
            pass
    for choice in choices:
        if value == choice and isinstance(value, bool) == isinstance(choice, bool):
            return choice
    unknown = f"unknown {what} {value!r}; expected one of {choices}" if what else None
    raise ConfigError(key, unknown or f"expected one of {choices}, got {value!r}")


def coerce(tp: Any, value: Any, key: str) -> Any:
    """`value` as type `tp` by the rule of the module docstring; ConfigError naming `key` otherwise."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key=key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # only `X | None` unions are supported
        return coerce(inner, value, key)
    if origin is Literal:
        return choose(value, args, key)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(key, f"expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            raise ConfigError(
                key, f"expected a list of {len(args)} values, got {len(value)}: {list(value)!r}"
            )
        kinds = args[:1] * len(value) if origin is list or (args and args[-1] is Ellipsis) else args
        items = [
            coerce(t, v, f"{key}[{i}]") for i, (t, v) in enumerate(zip(kinds or [Any] * len(value), value))
        ]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if tp in (int, float):
        return parse_number(tp, value, key)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r} (quote it in YAML)")
        return value
    if tp is Any:
        return value
    raise TypeError(f"{key}: the config schema has no rule for type {tp!r}")  # a schema bug, not bad input


def build(cls: type, data: Any, *, base: Any = None, key: str = "", source: str | None = None) -> Any:
    """Dataclass `cls` from plain nested `data` (see the module docstring).

    base: an instance of `cls` whose values fill the keys `data` leaves out, section by section (the preset
          under its overrides); None: the field defaults.
    key:  the dotted path of `data` in the whole config, for the messages.
    source: the file or override the data came from, named in front of every message.
    """
    try:
        return _build(cls, data, base, key)
    except ConfigError as err:
        raise err.at(source) from None


def _build(cls: type, data: Any, base: Any, key: str) -> Any:
    shorthand = getattr(cls, "SHORTHAND", None)
    if isinstance(data, str) and shorthand:
        data = {shorthand: data}
    if not isinstance(data, dict):
        raise ConfigError(key, f"expected {_describe(cls)}, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [name for name in data if name not in fields]
    if unknown:
        others = f" (also unknown: {', '.join(map(str, unknown[1:]))})" if unknown[1:] else ""
        raise ConfigError(
            join_key(key, str(unknown[0])), f"unknown key{others}; {cls.__name__} has: {', '.join(fields)}"
        )
    hints = _hints(cls)
    kwargs = {}
    for name, f in fields.items():
        where = join_key(key, name)
        inner_base = getattr(base, name) if base is not None else None
        if name in data:
            tp = hints[name]
            if dataclasses.is_dataclass(tp):
                kwargs[name] = _build(tp, data[name], inner_base, where)
            else:
                kwargs[name] = coerce(tp, data[name], where)
        elif base is not None:
            kwargs[name] = inner_base
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(where, f"missing (required: {_describe(hints[name])})")
    return cls(**kwargs)


def to_plain(config: Any) -> Any:
    """Plain nested dicts/lists (tuples as lists) of a dataclass, for YAML, JSON and checkpoints."""

    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [plain(v) for v in x]
        return x

    return plain(dataclasses.asdict(config))


def set_dotted(data: dict[str, Any], key: str, value: Any, where: str = "") -> None:
    """data[a][b][c] = value for key "a.b.c", creating sections; ConfigError if a prefix is not a section."""
    node = data
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(where or key, f"{key!r} is not a dotted key such as optim.lr")
    for i, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(where or key, f"{'.'.join(parts[: i + 1])} is {node!r}, not a section")
    node[parts[-1]] = value
