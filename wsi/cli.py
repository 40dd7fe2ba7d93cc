"""The ``wsi`` command: the one composition root (parse → settings → build → run).

Only this module imports the other top-level packages, and it does so lazily inside each
command so that ``wsi --help`` stays fast and the layering stays a DAG.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from wsi.errors import WsiArchiveError
from wsi.settings import Settings, load_settings

log = logging.getLogger("wsi")


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "settings",
        "Each setting is read from, in rising priority: its default, the TOML file given by "
        "--config (keys named as below, with underscores), the WSI_<NAME> environment "
        "variable (e.g. WSI_DATA_DIR), and the flag.",
    )
    group.add_argument("--config", type=Path, help="TOML settings file")
    group.add_argument("--host", help="HTTP listen address (default 127.0.0.1)")
    group.add_argument("--port", type=int, help="HTTP port (default 8080)")
    group.add_argument("--data-dir", type=Path, help="archive folder: index + files (./data)")
    group.add_argument("--database-url", help="SQLAlchemy URL of the index "
                       "(default sqlite:///DATA_DIR/index.sqlite)")
    group.add_argument("--dicom-port", type=int, help="DIMSE port (default 11112)")
    group.add_argument("--ae-title", help="DIMSE AE title (default WSIARCHIVE)")
    group.add_argument("--on-conflict", choices=["reject", "overwrite"],
                       help="same SOP Instance UID with different bytes (default reject)")
    group.add_argument("--cors-origins", help="comma-separated allowed origins (default *)")
    group.add_argument("--log-level", help="DEBUG, INFO, WARNING (default INFO)")


def _load(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name, None)
        for name in ("host", "port", "data_dir", "database_url", "dicom_port", "ae_title",
                     "on_conflict", "cors_origins", "log_level")
    }
    return load_settings(args.config, overrides=overrides)


def _configure_logging(level: str) -> None:
    # Process-wide switch, set once here in the composition root.
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _build_archive(settings: Settings) -> Any:
    from archive.archive import Archive

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Archive(settings)


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the HTTP (DICOMweb) service."""
    import uvicorn

    from dicomweb.app import create_app
    from dicomweb.blocking import Blocking
    from dicomweb.services import Services

    settings = _load(args)
    _configure_logging(settings.log_level)
    archive = _build_archive(settings)
    services = Services(settings, archive, Blocking(settings.worker_threads))
    app = create_app(services)
    log.info("serving DICOMweb on http://%s:%d/dicom-web, data in %s",
             settings.host, settings.port, settings.data_dir)
    uvicorn.run(app, host=settings.host, port=settings.port,
                log_level=settings.log_level.lower(), access_log=False)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Ingest every DICOM file below the given folders."""
    settings = _load(args)
    _configure_logging(settings.log_level)
    archive = _build_archive(settings)
    files = [p for root in args.paths for p in (root.rglob("*") if root.is_dir() else [root])
             if p.is_file()]
    stored = failed = 0
    for i, path in enumerate(files, 1):
        try:
            archive.ingest_path(path)
            stored += 1
        except WsiArchiveError as exc:
            failed += 1
            log.warning("%s: %s", path, exc.reason)
        _progress(i, len(files))
    print(f"\nimported {stored} instance(s), {failed} failed", file=sys.stderr)
    archive.close()
    return 0 if not failed else 1


def _progress(done: int, total: int) -> None:
    width = 40
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    sys.stderr.flush()


def build_parser() -> argparse.ArgumentParser:
    """The ``wsi`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="wsi", description="WSI Archive: DICOM archive with DICOMweb and whole-slide tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the DICOMweb service",
                           description="Run the archive's HTTP service (DICOMweb under "
                           "/dicom-web, OpenAPI schema under /schema, health at /healthz).")
    _settings_flags(serve)
    serve.set_defaults(func=cmd_serve)
    imp = sub.add_parser("import", help="ingest DICOM files from folders",
                         description="Ingest DICOM Part 10 files (recursively) into the archive.")
    imp.add_argument("paths", nargs="+", type=Path, help="files or folders")
    _settings_flags(imp)
    imp.set_defaults(func=cmd_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wsi`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except WsiArchiveError as exc:
        print(f"wsi: {exc.reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
