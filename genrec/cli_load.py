"""The data-loading options of every ``genrec`` command, from one definition: :class:`genrec.data.LoadOptions`.

Each field of LoadOptions is one option, named after the field (``invalid_rows`` -> ``--invalid-rows``),
with the field's description as its help, so ``genrec data info``, ``genrec benchmark ranking``,
``genrec encode`` and any other command that loads a data set spell and explain them alike.

Two ways to use it:

- decorate a command with :func:`with_load_options`; the command declares a ``load: LoadOptions``
  parameter and receives the options the user gave (a bad value exits with a one-line error)::

      @app.command("mine")
      @with_load_options
      def mine(dataset: str = "movielens-latest-small", *, load: LoadOptions) -> None:
          loaded = load_dataset(dataset, options=load)

- or declare the options yourself from :data:`LOAD_OPTIONS` (the typer annotation of each) and turn
  the parsed values into LoadOptions with :func:`load_options_from_cli`, e.g. to put them into a
  settings object that holds a ``load: LoadOptions`` field.

Every option defaults to "not given" (None): only the options on the command line are set, so a
``--protocol``'s values hold for the fields the user did not give (``LoadOptions.model_fields_set``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from genrec.cli_console import fail
from genrec.config import ConfigError, shown
from genrec.data import LoadOptions
from genrec.data.dataset import Policy, TieBreak
from genrec.registry import UnknownNameError


def option_help(name: str) -> str:
    """The help of the option that sets the LoadOptions field ``name``: its description and default."""
    field = LoadOptions.model_fields[name]
    return f"{field.description} [default: {field.default}]"


# field -> the typer annotation of its option; the parameter name is the field name
LOAD_OPTIONS: dict[str, Any] = {
    "invalid_rows": Annotated[Policy | None, typer.Option(help=option_help("invalid_rows"), show_default=False)],
    "duplicates": Annotated[Policy | None, typer.Option(help=option_help("duplicates"), show_default=False)],
    "unknown_items": Annotated[Policy | None, typer.Option(help=option_help("unknown_items"), show_default=False)],
    "strict_metadata": Annotated[
        bool | None,
        typer.Option("--strict-metadata/--no-strict-metadata", help=option_help("strict_metadata"), show_default=False),
    ],
    "verify_images": Annotated[
        bool | None, typer.Option("--verify-images/--no-verify-images", help=option_help("verify_images"))
    ],
    "min_user_interactions": Annotated[
        int | None, typer.Option(min=1, help=option_help("min_user_interactions"), show_default=False)
    ],
    "min_item_interactions": Annotated[
        int | None, typer.Option(min=0, help=option_help("min_item_interactions"), show_default=False)
    ],
    "k_core": Annotated[int | None, typer.Option(min=1, help=option_help("k_core"), show_default=False)],
    "tie_break": Annotated[TieBreak | None, typer.Option(help=option_help("tie_break"), show_default=False)],
    "protocol": Annotated[str | None, typer.Option(help=option_help("protocol"), show_default=False)],
    "column": Annotated[
        list[str] | None,
        typer.Option(help="csv/parquet column mapping GENREC_NAME=SOURCE_COLUMN, e.g. user_id=customer (repeatable)"),
    ],
}


def parse_columns(pairs: list[str]) -> dict[str, str] | None:
    """``--column user_id=customer`` pairs -> the column mapping of the csv/parquet formats."""
    mapping = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise ConfigError(f"--column expects GENREC_NAME=SOURCE_COLUMN (e.g. user_id=customer), got {shown(pair)}")
        mapping[key] = value
    return mapping or None


def load_options_from_cli(**given: Any) -> LoadOptions:
    """LoadOptions from the values typer parsed for :data:`LOAD_OPTIONS` (None: not given).

    Raises ConfigError naming the option for a bad value, e.g. an unknown ``--protocol``.
    """
    unknown = set(given) - set(LOAD_OPTIONS)
    if unknown:
        raise TypeError(f"not load options: {sorted(unknown)}; valid: {sorted(LOAD_OPTIONS)}")
    fields = {name: value for name, value in given.items() if value is not None and name != "column"}
    columns = parse_columns(given.get("column") or [])
    if columns:
        fields["columns"] = columns
    return LoadOptions.from_dict(fields, source="load options")


def with_load_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command`` every option of :data:`LOAD_OPTIONS`; it receives them as ``load: LoadOptions``.

    A bad value (an unknown protocol, a malformed ``--column``) exits with a one-line error before
    the command runs.
    """
    signature = inspect.signature(command, eval_str=True)  # typer reads these annotations as objects
    if "load" not in signature.parameters:
        raise TypeError(f"{command.__name__} must take a 'load: LoadOptions' parameter")
    own = [parameter for parameter in signature.parameters.values() if parameter.name != "load"]
    clash = {parameter.name for parameter in own} & set(LOAD_OPTIONS)
    if clash:
        raise TypeError(f"{command.__name__} declares load options itself: {sorted(clash)}")
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
        for name, annotation in LOAD_OPTIONS.items()
    ]

    @functools.wraps(command)
    def with_options(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name, None) for name in LOAD_OPTIONS}
        try:
            load = load_options_from_cli(**given)
        except (ConfigError, UnknownNameError) as err:
            raise fail(str(err)) from None
        return command(*args, **kwargs, load=load)

    parameters = [*own, *added]
    with_options.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_options.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return with_options
