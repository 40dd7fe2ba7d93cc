"""Settings precedence: defaults < TOML < WSI_* environment < flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wsi.errors import InvalidInput
from wsi.settings import RemoteModality, Settings, load_settings


def test_defaults_match_the_documented_service() -> None:
    settings = load_settings(environ={})

    assert settings == Settings()
    assert (settings.host, settings.port, settings.dicom_port) == ("127.0.0.1", 8080, 11112)
    assert settings.ae_title == "WSIARCHIVE" and settings.data_dir == Path("data")
    assert settings.resolved_database_url == "sqlite:///data/index.sqlite"


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "wsi.toml"
    config.write_text('port = 9000\nae_title = "FROMTOML"\ndata_dir = "/srv/a"\n'
                      'modalities = [{ae_title = "PACS", host = "10.0.0.1", port = 104}]\n')

    settings = load_settings(
        config,
        environ={"WSI_AE_TITLE": "FROMENV", "WSI_DATA_DIR": "/srv/b", "WSI_CORS_ORIGINS": "a,b"},
        overrides={"data_dir": Path("/srv/c"), "port": None},
    )

    assert settings.port == 9000
    assert settings.ae_title == "FROMENV"
    assert settings.data_dir == Path("/srv/c")
    assert settings.cors_origins == ("a", "b")
    assert settings.modalities == (RemoteModality("PACS", "10.0.0.1", 104),)


def test_modalities_from_environment() -> None:
    settings = load_settings(environ={"WSI_MODALITIES": "STORESCP@127.0.0.1:4242,X@h:1"})

    assert settings.modalities == (RemoteModality("STORESCP", "127.0.0.1", 4242),
                                   RemoteModality("X", "h", 1))


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"WSI_PORT": "eighty"}, "integer"),
        ({"WSI_ON_CONFLICT": "merge"}, "one of"),
        ({"WSI_MODALITIES": "no-at-sign"}, "AET@host:port"),
    ],
)
def test_invalid_values_are_reported(environ: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_settings(environ=environ)


def test_unknown_toml_keys_and_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("prot = 1\n")

    with pytest.raises(InvalidInput, match="unknown settings: prot"):
        load_settings(bad, environ={})
    with pytest.raises(InvalidInput, match="cannot read config"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_http_workers() -> None:
    cores = min(os.cpu_count() or 1, 8)

    assert load_settings(environ={}).resolved_http_workers == cores
    assert load_settings(environ={"WSI_HTTP_WORKERS": "3"}).resolved_http_workers == 3
    with pytest.raises(InvalidInput, match="http_workers"):
        _ = load_settings(environ={"WSI_HTTP_WORKERS": "-1"}).resolved_http_workers
