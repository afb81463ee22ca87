"""Typed run settings turned into command-line options, one option per dataclass field.

Each field's default is the option's default and the string literal right after the
field (its docstring) is the option's help, so a settings class documents itself. The
checks that the trainers' settings share are here too.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from pathlib import Path
from typing import Any, TypeVar

from envs.world import EnvSettings

Settings = TypeVar("Settings")


def field_docs(cls: type) -> dict[str, str]:
    """Return the docstring written under each field of a dataclass, by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, following in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _option_type(annotation: Any) -> tuple[Any, bool]:
    """Return (converter, optional) for a field annotation such as `int`, `str | None`."""
    optional = False
    args = typing.get_args(annotation)
    if args and type(None) in args:
        optional = True
        annotation = next(a for a in args if a is not type(None))
    if annotation is bool:
        return _parse_bool, optional
    if annotation in (int, float, str):
        return annotation, optional
    raise TypeError(f"settings fields must be bool, int, float or str (optionally None), got {annotation}")


def add_settings_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add one `--field-name` option per field of the dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    group = parser.add_argument_group(cls.__name__, (cls.__doc__ or "").strip().splitlines()[0])
    for field in dataclasses.fields(cls):
        converter, optional = _option_type(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        name = "--" + prefix + field.name.replace("_", "-")
        help_text = docs.get(field.name, "").replace("%", "%%")  # argparse formats help with %
        # A bool option alone means true, like a flag. "--name false" still works.
        flag = {"nargs": "?", "const": True} if converter is _parse_bool else {}
        group.add_argument(
            name,
            dest=prefix.replace("-", "_") + field.name,
            type=(lambda text, c=converter: None if text.lower() == "none" else c(text))
            if optional
            else converter,
            default=default,
            metavar=hints[field.name].__name__ if isinstance(hints[field.name], type) else "VALUE",
            help=f"{help_text} (default: {default})",
            **flag,
        )


def settings_from_arguments(cls: type[Settings], namespace: argparse.Namespace, prefix: str = "") -> Settings:
    """Build a `cls` instance from the parsed options added by `add_settings_arguments`."""
    values = {f.name: getattr(namespace, prefix.replace("-", "_") + f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**values)


def settings_to_dict(settings: Any) -> dict[str, Any]:
    """Return a dataclass instance as a plain dict, for JSON files and checkpoints."""
    return dataclasses.asdict(settings)


def resolve_path_fields(settings: Any, names: tuple[str, ...]) -> None:
    """Make the named path fields of a frozen settings dataclass absolute, in place.

    Checkpoints and run records keep the settings, and programs that read them may run
    from another folder. None and "none" (no file) stay as they are.
    """
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, str) and value and value.lower() != "none":
            object.__setattr__(settings, name, str(Path(value).expanduser().resolve()))


def check_positive(settings: Any, names: tuple[str, ...]) -> None:
    """Raise ValueError unless each named integer field of `settings` is at least 1."""
    for name in names:
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(settings, name)}")


def fill_dataset_defaults(settings: Any, **environment: Any) -> None:
    """Check a training run's dataset fields and fill in the dataset's defaults, in place.

    `settings` is a frozen dataclass with `dataset`, `languages`, `rxr_dir`, `teacher` and
    `max_instruction_length`; the environment settings validate them (and any further
    `environment` fields, such as `reward`) and give `teacher` and
    `max_instruction_length` their defaults for R2R or RxR.
    """
    checked = EnvSettings(
        max_instruction_length=settings.max_instruction_length,
        dataset=settings.dataset,
        languages=settings.languages,
        rxr_dir=settings.rxr_dir,
        teacher=settings.teacher,
        **environment,
    )
    object.__setattr__(settings, "max_instruction_length", checked.max_instruction_length)
    object.__setattr__(settings, "teacher", checked.teacher)
