"""Settings from three places, strongest first: flags, environment variables, a TOML file.

The file (`--config FILE` or `IMSEARCH_CONFIG`) has one table per service:

    [encoder]
    max_batch = 32
    [index]
    lsh_tables = 16
    [gateway]
    rerank_factor = 4
"""

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource

S = TypeVar("S", bound=BaseSettings)


def read_config_file(path: Path | None) -> dict[str, Any]:
    path = path or (Path(os.environ["IMSEARCH_CONFIG"]) if os.environ.get("IMSEARCH_CONFIG") else None)
    if path is None:
        return {}
    with path.open("rb") as f:
        return tomllib.load(f)


def load_settings(cls: type[S], section: dict[str, Any], **flags: Any) -> S:
    """Builds `cls` with flags over environment over the file's `section` over defaults."""
    file_values = dict(section)

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
            return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=file_values)

    given = {k: v for k, v in flags.items() if v is not None}
    return cls.model_validate(WithFile(**given).model_dump())
