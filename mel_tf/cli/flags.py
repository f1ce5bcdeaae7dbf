"""Command-line flags derived from the configuration classes (mel_tf.config).

Every field of a configuration class is one flag: its name, type, default, help
text and choices come from the field (`mel_tf.config.setting`), so a setting is
added by adding a field. `define` declares them, `read` builds a configuration
from the parsed flags, and `flag_file` writes configurations back as a flag file
that reproduces them (a run's flags.txt).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Iterable

from absl import flags

from mel_tf import config


def _kind(cls, field: dataclasses.Field):
    """The flag's type: bool, int, float or str (a codec's fields are strings)."""
    if field.metadata.get("codec"):
        return str
    hint = typing.get_type_hints(cls)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union else hint


def _default(field: dataclasses.Field):
    codec = field.metadata.get("codec")
    return codec.format(field.default) if codec else field.default


def define(flag_values: flags.FlagValues, classes: Iterable[type] = config.CONFIG_CLASSES,
           module_name: str = None) -> None:
    """Declares one flag per field of `classes` in `flag_values`."""
    definers = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
                float: flags.DEFINE_float, str: flags.DEFINE_string}
    for cls in classes:
        for field in dataclasses.fields(cls):
            name, meta = config.flag_name(field), field.metadata
            kwargs = dict(flag_values=flag_values, module_name=module_name)
            if meta.get("choices"):
                flags.DEFINE_enum(name, _default(field), list(meta["choices"]), meta["help"],
                                  **kwargs)
            else:
                definers[_kind(cls, field)](name, _default(field), meta["help"], **kwargs)


def _value(flag_values, field: dataclasses.Field):
    value = flag_values[config.flag_name(field)].value
    codec = field.metadata.get("codec")
    return codec.parse(value) if codec and value is not None else value


def read(cls, flag_values: flags.FlagValues):
    """An instance of `cls` from the parsed flags. Fields a preset chooses
    (NetworkConfig's) take their flag only when it was given."""
    values = {}
    for field in dataclasses.fields(cls):
        if field.metadata.get("preset_default") and not flag_values[
                config.flag_name(field)].present:
            continue
        values[field.name] = _value(flag_values, field)
    if cls is config.NetworkConfig:
        return config.preset(values.pop("preset"), **values)
    return cls(**values)


def given(flag_values: flags.FlagValues, cls) -> set:
    """The fields of `cls` whose flags were given (on the command line or in a flag file)."""
    return {f.name for f in dataclasses.fields(cls)
            if flag_values[config.flag_name(f)].present}


def flag_file(*configs) -> str:
    """Flag-file lines that rebuild `configs` exactly: every field, unset ones left out."""
    lines = []
    for cfg in configs:
        for field in dataclasses.fields(cfg):
            value = getattr(cfg, field.name)
            if value is None:
                continue
            name, codec = config.flag_name(field), field.metadata.get("codec")
            if codec:
                lines.append(f"--{name}={codec.format(value)}")
            elif isinstance(value, bool):
                lines.append(f"--{'' if value else 'no'}{name}")
            else:
                lines.append(f"--{name}={value!r}" if isinstance(value, float)
                             else f"--{name}={value}")
    return "".join(line + "\n" for line in lines)
