"""Runtime configuration: one typed object, built at the edge (the CLI, a server, your program) and passed down.

Sources, strongest first: keyword arguments (the CLI's flags), environment variables
(``TRM_<FIELD>``, e.g. ``TRM_HOME``, ``TRM_DB_URL``), then the TOML file named by ``TRM_CONFIG``
(top-level keys are the field names)::

    from trm_modules.settings import Settings
    settings = Settings(db_url="store.sqlite3")          # flags > TRM_* > $TRM_CONFIG file > defaults

Library code takes a ``Settings`` (or the single values it needs) as an argument and never reads
the environment itself; a function whose ``settings`` is ``None`` builds ``Settings()`` once, at
that public entry point. To add a setting, add a field here with a docstring: its environment
variable is ``TRM_`` + the upper-cased name.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Environment variable naming the TOML settings file.
CONFIG_FILE_ENV = "TRM_CONFIG"

__all__ = ["CONFIG_FILE_ENV", "Settings", "default_home", "split_paths", "tomllib"]


def default_home() -> Path:
    """The per-user data directory of trm-modules (installed modules, default store, journals, outboxes)."""
    return Path(platformdirs.user_data_dir("trm-modules", appauthor=False))


def split_paths(value: str) -> list[str]:
    """An ``os.pathsep``-separated list (like ``PATH``), empty entries dropped."""
    return [entry for entry in value.split(os.pathsep) if entry]


class Settings(BaseSettings):
    """How trm-modules runs here. Every field can come from a flag, ``TRM_<FIELD>`` or the settings file."""

    model_config = SettingsConfigDict(env_prefix="TRM_", extra="ignore", validate_default=True,
                                      populate_by_name=True)

    home: Path = Field(default_factory=default_home)
    """Where installed modules (``<home>/modules``), the default store and outboxes live (``TRM_HOME``)."""

    registry: Path | None = None
    """The default registry folder (``TRM_REGISTRY``); None: the source checkout's ``registry/`` if any."""

    db_url: str | None = None
    """The store: a SQLAlchemy URL or a SQLite path (``TRM_DB_URL``); None: ``<home>/store.sqlite3``."""

    plugin_files: str = Field("", validation_alias="TRM_PLUGINS")
    """Plugin ``.py`` files to load, ``os.pathsep``-separated (``TRM_PLUGINS``)."""

    module_path: str = ""
    """Folders whose ``*.trm`` files every host can load, ``os.pathsep``-separated (``TRM_MODULE_PATH``)."""

    public_url: str | None = None
    """The URL clients reach ``trm serve`` at (``TRM_PUBLIC_URL``); solve activity IRIs are built from it."""

    xapi_lrs_url: str | None = None
    """The LRS every solve and feedback is forwarded to as xAPI statements (``TRM_XAPI_LRS_URL``); None: off."""

    xapi_lrs_auth: str | None = None
    """``user:password`` (Basic) or a full ``Authorization`` value for that LRS (``TRM_XAPI_LRS_AUTH``)."""

    xapi_activity_base: str | None = None
    """IRI base of solve activities (``TRM_XAPI_ACTIVITY_BASE``); None: ``public_url``."""

    xapi_homepages: str = ""
    """``platform=https://lms.example,…``: the account homePage under which each platform's learner
    pseudonyms go to the LRS (``TRM_XAPI_HOMEPAGES``)."""

    engine: Literal["eager", "onnx", "auto"] = "auto"
    """What computes a model's supervision steps on the CPU (``TRM_ENGINE``): ``auto`` (the default: eager
    or ONNX Runtime, on one core or all, whichever measures faster for the model at each batch shape when it
    loads, ONNX admitted only with answers identical to eager; ``trm_modules.model.engine_choice``), ``eager``
    (PyTorch, any device, no extra dependency, no export when a model loads) or ``onnx`` (ONNX Runtime,
    the ``onnx`` extra; same answers)."""

    precision: Literal["fp32", "bf16", "auto"] = "auto"
    """Numeric precision of inference (``TRM_PRECISION``): ``auto`` (the default) takes bf16 only where the
    device measures fast at bf16 and the package's own evaluation shows bf16 keeps its answers, else fp32
    (``trm_modules.model.precision``); ``fp32``; ``bf16`` (autocast, eager engine)."""

    cuda_graphs: bool = False
    """Replay the supervision steps of models on CUDA devices from CUDA graphs (``TRM_CUDA_GRAPHS``;
    ``trm_modules.model.cuda_graphs``); off by default: not yet timed on a GPU. The CPU is not affected."""

    xapi_cors_origins: str = "*"
    """Origins whose browser content may call ``/xapi``, comma-separated; ``*``: any; empty: none
    (``TRM_XAPI_CORS_ORIGINS``)."""

    def __init__(self, **values: Any) -> None:
        # A flag left unset (None) does not hide the environment or the file.
        super().__init__(**{name: value for name, value in values.items() if value is not None})

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get(CONFIG_FILE_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @classmethod
    def engine_from_environment(cls) -> str:
        """``engine`` as ``TRM_ENGINE`` or the settings file set it (a bad value is returned as given, for the
        caller to refuse by name, not as a validation error about the whole settings object)."""
        try:
            return cls().engine
        except ValueError:  # pydantic's ValidationError
            return os.environ.get("TRM_ENGINE", "")

    @classmethod
    def precision_from_environment(cls) -> str:
        """``precision`` as ``TRM_PRECISION`` or the settings file set it (a bad value returned as given)."""
        try:
            return cls().precision
        except ValueError:  # pydantic's ValidationError
            return os.environ.get("TRM_PRECISION", "")

    @property
    def db(self) -> str:
        """The store's location: ``db_url``, else ``<home>/store.sqlite3``."""
        return self.db_url or str(self.home / "store.sqlite3")

    @property
    def plugin_paths(self) -> list[str]:
        """``plugin_files`` as a list."""
        return split_paths(self.plugin_files)

    @property
    def module_folders(self) -> list[str]:
        """``module_path`` as a list."""
        return split_paths(self.module_path)
