"""The one config loader: TOML files checked against a typed schema (pydantic v2), for the ledger,
the oracle and the agent alike.

Each service describes its file as tables of typed keys (`table`, `table_of`, `document`; `keys_of`
takes a key's type and default from the dataclass field it fills, so a default is written once) and
keeps its own frozen dataclasses and value rules (ports, URLs, ranges); this module owns what is
the same for all three:
- reading the file (a missing file or bad TOML is one `ConfigError` naming the file);
- environment overrides: `FAULTPROOF_<SERVICE>__<SECTION>__<KEY>=value` (e.g.
  `FAULTPROOF_ORACLE__HTTP__PORT=8711`) replaces that key before validation; the value is read as
  a TOML value (`8711`, `true`, `["a", "b"]`, `"x"`), and a bare word that is not TOML is a string;
- strict types: an unknown section or key is refused by name, a wrong type names the key and the
  type it must have (`[http] port must be int, got str`), a missing key names itself; nothing is
  coerced (a string "80" is not a port, true is not 1);
- the one path rule: a relative path in any config is relative to the config file's folder, and
  the one key rule (`key_spec`): a key is a file path or a token's `pkcs11:TOKEN/LABEL`.
It never reads a key file or opens a socket: it only reads and checks text.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from faultproof.signing import PKCS11_PREFIX

ENV_PREFIX = "FAULTPROOF_"
T = TypeVar("T")


class ConfigError(Exception):
    """A config file that is missing, unreadable or invalid; the message names the key and the fix."""


REQUIRED: Any = ...  # a key with no default

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

# What an operator reads in an error: the TOML name of a type, and a word for it.
_TYPE_WORDS = {"int": "int (an integer)", "float": "float (a number)", "str": "str (a string)",
               "bool": "bool (true or false)", "list": "list (an array)", "dict": "table"}


def table(name: str, keys: Mapping[str, tuple[Any, Any]]) -> type[BaseModel]:
    """A TOML table: key -> (type, default or REQUIRED). Unknown keys are refused."""
    fields: dict[str, Any] = {k: (typ, default) for k, (typ, default) in keys.items()}
    model: type[BaseModel] = create_model(name, __config__=_STRICT, **fields)
    return model


def keys_of(cls: type, fields: Mapping[str, str] | Iterable[str] | None = None) -> dict[str, tuple[Any, Any]]:
    """Table keys (key -> (type, default), as `table` takes them) whose type and default are a
    frozen dataclass's fields, so that a default is written once, in the dataclass. `fields` picks
    them: TOML key -> field name, or field names that are their own keys; None: every field. Each
    picked field has a default. TOML has arrays, not tuples, so a tuple field is an array here;
    `build` turns it back."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    if fields is None:
        fields = list(by_name)
    pairs = fields.items() if isinstance(fields, Mapping) else ((name, name) for name in fields)
    keys: dict[str, tuple[Any, Any]] = {}
    for key, name in pairs:
        f, typ = by_name[name], hints[name]
        if typing.get_origin(typ) is tuple:
            typ = list[typing.get_args(typ)[0]]  # type: ignore[misc]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
        keys[key] = (typ, list(default) if isinstance(default, tuple) else default)
    return keys


def table_of(cls: type) -> type[BaseModel]:
    """A TOML table whose keys are a frozen dataclass's fields (all with defaults; see `keys_of`)."""
    return table(cls.__name__ + "Table", keys_of(cls))


def document(name: str, sections: Mapping[str, type[BaseModel]], required: tuple[str, ...] = ()) -> type[BaseModel]:
    """A whole file: section -> table. A section not in `required` may be left out (all defaults)."""
    fields: dict[str, Any] = {}
    for section, model in sections.items():
        fields[section] = (model, REQUIRED) if section in required else (model, Field(default_factory=model))
    doc: type[BaseModel] = create_model(name, __config__=_STRICT, **fields)
    return doc


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """A dataclass from a validated table (arrays become the tuples the dataclass holds)."""
    kinds = {f.name: f for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) and k in kinds else v for k, v in values.items()})


def read(path: str | Path, hint: str) -> dict[str, Any]:
    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {p} not found ({hint})") from None
    except IsADirectoryError:
        raise ConfigError(f"{p} is a folder; give the path of a config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None


def _env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string, so FAULTPROOF_X__Y__HOST=0.0.0.0 needs no quotes


def with_env(raw: dict[str, Any], service: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`raw` with every `FAULTPROOF_<SERVICE>__<SECTION>__<KEY>` variable applied (a new dict).
    Names are matched case-insensitively; the schema then checks the section and key like any other."""
    env = os.environ if environ is None else environ
    prefix = f"{ENV_PREFIX}{service.upper()}__"
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for name, text in sorted(env.items()):
        if not name.upper().startswith(prefix):
            continue
        parts = name[len(prefix):].lower().split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"environment variable {name} must be {prefix}<SECTION>__<KEY>")
        section, key = parts
        table_ = out.setdefault(section, {})
        if not isinstance(table_, dict):
            raise ConfigError(f"[{section}] must be a table (set by {name})")
        table_[key] = _env_value(text)
    return out


def _where(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "the file"
    head = f"[{loc[0]}]"
    if len(loc) == 1:
        return head
    key = str(loc[1]) + "".join(f"[{i}]" for i in loc[2:])
    return f"{head} {key}"


def _message(err: Any, known: Mapping[str, type[BaseModel]]) -> str:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return (f"unknown config section [{loc[0]}] (an unknown section is refused rather than ignored; "
                    f"known: {', '.join(sorted(known))})")
        section = known.get(str(loc[0]))
        names = ", ".join(sorted(section.model_fields)) if section is not None else ""
        return f"[{loc[0]}] unknown key {loc[-1]!r} (known: {names})"
    if kind == "missing":
        return f"{_where(loc)} is required" if len(loc) > 1 else f"missing section {_where(loc)}"
    got = type(err.get("input")).__name__
    expected = {"string_type": "str", "int_type": "int", "int_from_float": "int", "float_type": "float",
                "bool_type": "bool", "list_type": "list", "model_type": "dict", "dict_type": "dict"}.get(kind, "")
    if expected in _TYPE_WORDS:
        word = _TYPE_WORDS[expected]
        got = {"dict": "table", "NoneType": "nothing"}.get(got, got)
        return f"{_where(loc)} must be {expected}, got {got}: the wrong type ({word} is expected)"
    return f"{_where(loc)}: {err['msg']}"


def parse(raw: Mapping[str, Any], model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Validate `raw` against `model`; the sections as plain dicts. The first problem is the error
    (one line for the operator, as every service reports it)."""
    if not isinstance(raw, Mapping):
        raise ConfigError("a config is a TOML table of sections")
    try:
        doc = model.model_validate(dict(raw))
    except ValidationError as e:
        known = {name: f.annotation for name, f in model.model_fields.items()}
        raise ConfigError(_message(e.errors()[0], known)) from None  # type: ignore[arg-type]
    return {name: getattr(doc, name).model_dump() for name in model.model_fields}


def path_in(base: Path, value: str) -> Path:
    """The one path rule: relative to the config file's folder (`base`), `~` expanded."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def key_spec(value: str, path: Callable[[str], Path]) -> Path:
    """A key setting (DESIGN §15): `pkcs11:TOKEN/LABEL` names a key in a token and is kept as written;
    anything else is a key file, resolved by the service's `path` rule."""
    return Path(value) if value.startswith(PKCS11_PREFIX) else path(value)


def load(path: str | Path, service: str, hint: str, from_dict: Callable[[dict[str, Any], Path], T],
         environ: Mapping[str, str] | None = None) -> T:
    """Read `path`, apply the environment, and hand the tables to the service's `from_dict(raw, file)`
    (which parses them and applies its own value rules). Every error names the file."""
    p = Path(path)
    raw = with_env(read(p, hint), service, environ)
    try:
        return from_dict(raw, p)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None
