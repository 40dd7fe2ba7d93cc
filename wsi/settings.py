"""The one typed settings object: defaults < TOML ``--config`` < ``WSI_*`` environment < flags."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from wsi.errors import InvalidInput

OnConflict = Literal["reject", "overwrite"]


@dataclass(frozen=True)
class RemoteModality:
    """A DICOM peer this archive may send to (C-MOVE destination, C-STORE target)."""

    ae_title: str
    host: str
    port: int


@dataclass(frozen=True)
class Settings:
    """Everything configurable, passed explicitly from the CLI to the services."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("data")
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite at ``data_dir/index.sqlite``."""
    dicom_port: int = 11112
    ae_title: str = "WSIARCHIVE"
    dimse_enabled: bool = True
    dimse_allowed_callers: tuple[str, ...] = ()
    """Calling AE titles allowed to associate; empty means any caller."""
    on_conflict: OnConflict = "reject"
    """Same SOP Instance UID stored again with different bytes: reject (default) or overwrite."""
    cors_origins: tuple[str, ...] = ("*",)
    max_upload_bytes: int = 64 * 1024**3
    bulkdata_threshold: int = 1024
    """Values longer than this many bytes are sent as BulkDataURI in WADO-RS metadata."""
    http_workers: int = 0
    """HTTP worker processes sharing the port (0: one per core, at most 8); see
    dicomweb/workers.py."""
    worker_threads: int = 16
    conversion_workers: int = 1
    """Worker processes converting uploaded slides (each uses every core for encoding)."""
    keep_failed_uploads: bool = False
    """Keep the upload (and partial output) of a failed conversion for inspection."""
    log_level: str = "INFO"
    modalities: tuple[RemoteModality, ...] = field(default_factory=tuple)

    @property
    def resolved_http_workers(self) -> int:
        """How many HTTP worker processes to run."""
        if self.http_workers < 0:
            raise InvalidInput(f"http_workers must be 0 (one per core) or more, "
                               f"not {self.http_workers}")
        return self.http_workers or min(os.cpu_count() or 1, 8)

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL of the index."""
        return self.database_url or f"sqlite:///{self.data_dir / 'index.sqlite'}"


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Turn a TOML, environment or flag value into the field's type."""
    if value is None:
        return None
    origin = getattr(hint, "__origin__", None)
    if hint is Path:
        return Path(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in {"1", "true", "yes", "on"}
    if hint is int:
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"setting {name} must be an integer, not {value!r}") from exc
    if origin is Literal:
        if value not in get_args(hint):
            raise InvalidInput(f"setting {name} must be one of {get_args(hint)}, not {value!r}")
        return value
    if name == "modalities":
        return tuple(_modality(m) for m in value)
    if origin is tuple:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return tuple(value)
    return str(value)


def parse_modality(value: str) -> RemoteModality:
    """A :class:`RemoteModality` from ``AET@host:port``."""
    return _modality(value)


def _modality(value: Any) -> RemoteModality:
    """Parse ``{ae_title, host, port}`` or ``AET@host:port``."""
    if isinstance(value, RemoteModality):
        return value
    if isinstance(value, str):
        try:
            ae, address = value.split("@", 1)
            host, port = address.rsplit(":", 1)
            return RemoteModality(ae, host, int(port))
        except ValueError as exc:
            raise InvalidInput(f"modality {value!r} is not AET@host:port") from exc
    return RemoteModality(str(value["ae_title"]), str(value["host"]), int(value["port"]))


def load_settings(
    config: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from a TOML file, ``WSI_*`` variables and explicit overrides."""
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    if config is not None:
        try:
            values.update(tomllib.loads(config.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInput(f"cannot read config {config}: {exc}") from exc
    env = os.environ if environ is None else environ
    for name in hints:
        key = f"WSI_{name.upper()}"
        if key in env and name != "modalities":
            values[name] = env[key]
    if "WSI_MODALITIES" in env:
        values["modalities"] = [m for m in env["WSI_MODALITIES"].split(",") if m.strip()]
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(values) - set(hints)
    if unknown:
        raise InvalidInput(f"unknown settings: {', '.join(sorted(unknown))}")
    typed = {name: _coerce(name, hints[name], value) for name, value in values.items()}
    return dataclasses.replace(Settings(), **typed)
