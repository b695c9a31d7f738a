"""Settings from four places, strongest first: flags, environment variables, a TOML file, defaults.

Every entry point reads them the same way: `imsearch serve` and `python -m services.<name>`.
The file (`--config FILE` or `IMSEARCH_CONFIG`) has one table per service:

    [encoder]
    max_batch = 32
    [index]
    lsh_tables = 16
    [gateway]
    rerank_factor = 4
"""

import argparse
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic_settings import (
    BaseSettings,
    CliSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
)

S = TypeVar("S", bound=BaseSettings)


def read_config_file(path: Path | None) -> dict[str, Any]:
    path = path or (Path(os.environ["IMSEARCH_CONFIG"]) if os.environ.get("IMSEARCH_CONFIG") else None)
    if path is None:
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def load_settings(
    cls: type[S], section: dict[str, Any], argv: Sequence[str] | None = None, **flags: Any
) -> S:
    """Builds `cls` with flags over environment over the file's `section` over defaults.

    Flags come as keyword arguments (None means "not given") and, when `argv` is passed, from
    command-line arguments such as `--metrics-port 0` (pydantic-settings parses them).
    """
    file_values = dict(section)
    cli_args = list(argv) if argv is not None else None

    class WithFile(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            file_source = InitSettingsSource(settings_cls, init_kwargs=file_values)
            if cli_args is None:
                return init_settings, env_settings, file_source
            command_line: CliSettingsSource[Any] = CliSettingsSource(
                settings_cls,
                cli_parse_args=cli_args,
                cli_kebab_case=True,
                cli_implicit_flags=True,
                cli_exit_on_error=True,
            )
            return init_settings, command_line, env_settings, file_source

    given = {k: v for k, v in flags.items() if v is not None}
    return cls.model_validate(WithFile(**given).model_dump())


def settings_from_command_line(cls: type[S], section: str, argv: Sequence[str]) -> S:
    """A service's settings for `python -m services.<name> [--config FILE] [--field value ...]`."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config", type=Path, default=None)
    known, rest = parser.parse_known_args(list(argv))
    return load_settings(cls, read_config_file(known.config).get(section, {}), rest)
