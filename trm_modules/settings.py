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

A plugin declares its own settings (``trm_declare_settings``, a list of ``PluginSetting``); they are
validated into the same object, from the same sources, by ``with_plugin_settings`` when the plugins are
known (``trm serve`` does it for its runtime)::

    @hookimpl
    def trm_declare_settings():
        return [PluginSetting("myplugin_url", str | None, None, "Where my plugin sends things.")]
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar

from .errors import TRMError

import platformdirs
from pydantic import Field, PrivateAttr, create_model
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Environment variable naming the TOML settings file.
CONFIG_FILE_ENV = "TRM_CONFIG"

__all__ = [
    "CONFIG_FILE_ENV",
    "PluginSetting",
    "Settings",
    "SettingsClash",
    "default_home",
    "split_paths",
    "tomllib",
    "with_plugin_settings",
]


def default_home() -> Path:
    """The per-user data directory of trm-modules (installed modules, default store, journals, outboxes)."""
    return Path(platformdirs.user_data_dir("trm-modules", appauthor=False))


def split_paths(value: str) -> list[str]:
    """An ``os.pathsep``-separated list (like ``PATH``), empty entries dropped."""
    return [entry for entry in value.split(os.pathsep) if entry]


class Settings(BaseSettings):
    """How trm-modules runs here. Every field can come from a flag, ``TRM_<FIELD>`` or the settings file."""

    model_config = SettingsConfigDict(env_prefix="TRM_", extra="ignore", validate_default=True, populate_by_name=True)

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

    rate_limit: float = Field(0.0, ge=0)
    """Requests per second each API token may make of ``trm serve`` (``TRM_RATE_LIMIT``; per replica); more
    are answered 429 with ``Retry-After``. 0: no limit."""

    rate_limit_burst: float | None = Field(None, gt=0)
    """Requests a token may save up and spend at once (``TRM_RATE_LIMIT_BURST``); None: one second's worth."""

    _plugin_values: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        # A flag left unset (None) does not hide the environment or the file.
        given = {name: value for name, value in values.items() if value is not None}
        super().__init__(**given)
        # Values for settings no field declares yet (a plugin's): validated by ``with_plugin_settings``.
        known = set(type(self).model_fields) | {f.validation_alias for f in type(self).model_fields.values()}
        self._plugin_values = {name: value for name, value in given.items() if name not in known}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
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


class SettingsClash(TRMError):
    """A plugin declares a setting that the core or another plugin already declares."""


@dataclass(frozen=True)
class PluginSetting:
    """One setting a plugin declares (``trm_declare_settings``): ``name`` (a field of the settings object),
    its ``type`` (any pydantic type, e.g. ``str | None``), ``default``, ``help``, and its environment
    variable ``env`` (default ``TRM_`` + the upper-cased name). Flags and the settings file use ``name``."""

    name: str
    type: Any
    default: Any
    help: str
    env: str | None = None

    @property
    def env_var(self) -> str:
        return self.env or f"TRM_{self.name.upper()}"


SettingsT = TypeVar("SettingsT", bound=Settings)
_extended: dict[tuple[type, tuple[tuple[str, PluginSetting], ...]], type] = {}


def settings_class(base: type[SettingsT], declared: Sequence[tuple[str, PluginSetting]]) -> type[SettingsT]:
    """``base`` with a field for every ``(plugin name, setting)`` in ``declared`` (one class per combination).

    ``SettingsClash`` when a setting's name is taken by ``base`` or by another plugin's setting."""
    key = (base, tuple(declared))
    if key in _extended:
        return _extended[key]
    owners: dict[str, str] = {}
    fields: dict[str, Any] = {}
    for plugin, setting in declared:
        if setting.name in base.model_fields:
            raise SettingsClash(
                f"plugin {plugin!r} declares the setting {setting.name!r}, which trm-modules "
                "already has; a plugin should prefix its settings with its own name"
            )
        if setting.name in owners:
            raise SettingsClash(
                f"plugins {owners[setting.name]!r} and {plugin!r} both declare the setting {setting.name!r}"
            )
        owners[setting.name] = plugin
        fields[setting.name] = (
            setting.type,
            Field(setting.default, description=setting.help, validation_alias=setting.env_var),
        )
    extended = create_model(base.__name__, __base__=base, __doc__=base.__doc__, **fields)
    _extended[key] = extended
    return extended  # type: ignore[return-value]


def with_plugin_settings(settings: SettingsT, declared: Sequence[tuple[str, PluginSetting]]) -> SettingsT:
    """``settings`` validated again with the plugins' declared settings as fields: the values it was given
    (flags, keyword arguments, also those for plugin settings), then ``TRM_*`` and the settings file, as for
    the core's fields. A bad value is pydantic's ``ValidationError`` naming the setting."""
    if not declared:
        return settings
    cls = settings_class(type(settings), declared)
    given = {name: getattr(settings, name) for name in settings.model_fields_set}
    return cls(**given, **settings._plugin_values)
