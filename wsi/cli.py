"""The ``wsi`` command: the one composition root (parse → settings → build → run).

Only this module imports the other top-level packages, and it does so lazily inside each
command so that ``wsi --help`` stays fast and the layering stays a DAG.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsi.errors import InvalidInput, WsiArchiveError
from wsi.settings import Settings, load_settings

if TYPE_CHECKING:
    import socket

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
    group.add_argument("--http-workers", type=int,
                       help="HTTP worker processes sharing the port "
                       "(default 0: one per core, at most 8)")


def _load(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name, None)
        for name in ("host", "port", "data_dir", "database_url", "dicom_port", "ae_title",
                     "on_conflict", "cors_origins", "log_level", "dimse_enabled",
                     "http_workers")
    }
    return load_settings(args.config, overrides=overrides)


def _configure_logging(level: str) -> None:
    # Process-wide switch, set once here in the composition root. The process id tells the
    # HTTP workers (and the supervisor, the parser processes) apart in one log.
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )


def _build_archive(settings: Settings, parse_in_process: bool = False) -> Any:
    from archive.archive import Archive

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Archive(settings, parse_in_process=parse_in_process)


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the service: HTTP worker processes on one port, DIMSE in this process."""
    from dicomweb.jobs import ConversionJobs
    from dicomweb.workers import WorkerProcesses, bind_socket

    settings = _load(args)
    count = settings.resolved_http_workers
    _configure_logging(settings.log_level)
    # The port first: a second server started by mistake on the same data stops here,
    # before it could clear the first one's staging files.
    sock = bind_socket(settings.host, settings.port)
    # This process runs DIMSE only: no event loop to keep free, and a C-STORE would wait
    # for the parser process round trip (~3 ms of ~28 ms per 0.5 MB instance).
    archive = _build_archive(settings, parse_in_process=True)
    workers = WorkerProcesses(count, _http_worker, (settings,), sock,
                              preload=["wsi.cli", "dicomweb.app", "dicomweb.jobs", "uvicorn"])
    dimse = None
    try:
        # Before any worker runs: nothing else can be ingesting or converting yet.
        archive.recover()
        interrupted = ConversionJobs.mark_interrupted(settings.data_dir / "conversions")
        if interrupted:
            log.warning("%d conversion job(s) were interrupted by the last stop", interrupted)
        workers.start()  # the workers' start-up overlaps the DIMSE set-up below
        # After the fork server started: its socket folder belongs in the system's /tmp.
        _use_data_tmp(settings)
        if settings.dimse_enabled:
            from archive.dimse.server import start_dimse

            archive.start_parser()
            dimse = start_dimse(settings, archive)
        log.info("serving DICOMweb on http://%s:%d/dicom-web with %d HTTP worker "
                 "process(es), data in %s", settings.host, settings.port, count,
                 settings.data_dir)
        return workers.supervise()
    finally:
        workers.stop()
        if dimse is not None:
            dimse.shutdown()
        sock.close()
        archive.close()


def _http_worker(settings: Settings, sock: socket.socket) -> None:
    """One HTTP worker process (started by ``serve``): the whole app on the shared socket."""
    import uvicorn

    from dicomweb.app import create_asgi_app
    from dicomweb.blocking import Blocking
    from dicomweb.jobs import ConversionJobs
    from dicomweb.services import Services

    _configure_logging(settings.log_level)
    _use_data_tmp(settings)
    archive = _build_archive(settings)
    archive.start_parser()
    jobs = ConversionJobs(archive, settings.data_dir / "conversions",
                          workers=settings.conversion_workers,
                          keep_failed_uploads=settings.keep_failed_uploads)
    services = Services(settings, archive, Blocking(settings.worker_threads), jobs)
    app = create_asgi_app(services)
    # log_config=None: uvicorn's messages go through our logging, in our format.
    config = uvicorn.Config(app, log_level=settings.log_level.lower(), access_log=False,
                            log_config=None)
    uvicorn.Server(config).run(sockets=[sock])


def _use_data_tmp(settings: Settings) -> None:
    # Process-wide: temporary files (pynetdicom's received C-STORE data sets, uploads) go to
    # the data filesystem, so that ingest can rename them into staging instead of copying.
    temporary = settings.data_dir / "tmp"
    temporary.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(temporary)


def _remote(value: str, settings: Settings) -> Any:
    """A peer given as ``AET@host:port`` or as the AE title of a configured modality."""
    from wsi.settings import parse_modality

    if "@" in value:
        return parse_modality(value)
    for modality in settings.modalities:
        if modality.ae_title == value:
            return modality
    raise InvalidInput(f"unknown modality {value!r}: give AET@host:port or configure it")


def _scu(args: argparse.Namespace) -> tuple[Settings, Any]:
    from archive.dimse import scu
    from archive.dimse.switches import configure_pynetdicom

    settings = _load(args)
    _configure_logging(settings.log_level)
    configure_pynetdicom(settings.log_level)
    return settings, scu


def cmd_echo(args: argparse.Namespace) -> int:
    """C-ECHO a DICOM peer."""
    settings, scu = _scu(args)
    status = scu.echo(_remote(args.peer, settings), settings.ae_title)
    print(f"C-ECHO status 0x{status:04X}")
    return 0 if status == 0 else 1


def cmd_send(args: argparse.Namespace) -> int:
    """C-STORE a stored study, series or instance to a DICOM peer."""
    settings, scu = _scu(args)
    archive = _build_archive(settings)
    try:
        records = archive.instances(args.study, args.series, args.instance)
    finally:
        archive.close()
    counts = scu.send(_remote(args.to, settings), [r.path for r in records], settings.ae_title)
    print(f"sent {counts.completed}, warnings {counts.warning}, failed {counts.failed}")
    return 0 if not counts.failed else 1


def cmd_query(args: argparse.Namespace) -> int:
    """C-FIND a DICOM peer and print the matches as DICOM JSON."""
    import json

    settings, scu = _scu(args)
    filters = {}
    for key in args.key:
        name, sep, value = key.partition("=")
        if not sep:
            raise InvalidInput(f"matching key {key!r} is not NAME=VALUE")
        filters[name] = value
    matches = scu.query(_remote(args.peer, settings), args.level, filters,
                        args.return_key, args.model, settings.ae_title)
    print(json.dumps(matches, indent=1))
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    """C-MOVE studies from a DICOM peer into this archive (destination: our AE title)."""
    settings, scu = _scu(args)
    counts = scu.retrieve_move(_remote(args.peer, settings), "STUDY", args.study,
                               args.dest or settings.ae_title, "STUDY",
                               calling_ae=settings.ae_title)
    print(f"retrieved {counts.completed}, warnings {counts.warning}, failed {counts.failed}")
    return 0 if not counts.failed else 1


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


def _scu_parsers(sub: Any) -> None:
    peer_help = "DICOM peer as AET@host:port, or the AE title of a configured modality"
    echo = sub.add_parser("echo", help="C-ECHO a DICOM peer")
    echo.add_argument("peer", help=peer_help)
    echo.set_defaults(func=cmd_echo)
    send = sub.add_parser("send", help="C-STORE stored instances to a DICOM peer")
    send.add_argument("--to", required=True, help=peer_help)
    send.add_argument("study", help="Study Instance UID")
    send.add_argument("--series", help="only this Series Instance UID")
    send.add_argument("--instance", help="only this SOP Instance UID")
    send.set_defaults(func=cmd_send)
    query = sub.add_parser("query", help="C-FIND a DICOM peer")
    query.add_argument("peer", help=peer_help)
    query.add_argument("--level", default="STUDY",
                       choices=["PATIENT", "STUDY", "SERIES", "IMAGE"])
    query.add_argument("--model", default="STUDY", choices=["PATIENT", "STUDY"],
                       help="information model: Patient Root or Study Root (default)")
    query.add_argument("-k", "--key", action="append", default=[],
                       help="matching key NAME=VALUE (keyword or tag; repeatable)")
    query.add_argument("-r", "--return-key", action="append", default=[],
                       help="extra return key (keyword or tag; repeatable)")
    query.set_defaults(func=cmd_query)
    retrieve = sub.add_parser("retrieve", help="C-MOVE studies from a peer into this archive")
    retrieve.add_argument("peer", help=peer_help)
    retrieve.add_argument("study", nargs="+", help="Study Instance UID(s)")
    retrieve.add_argument("--dest", help="move destination AE title (default: our AE title)")
    retrieve.set_defaults(func=cmd_retrieve)
    for parser in (echo, send, query, retrieve):
        _settings_flags(parser)


def _dicomize_parser(sub: Any) -> None:
    from dicomizer.codec_names import CODEC_NAMES

    dz = sub.add_parser(
        "dicomize", help="convert a vendor slide into a DICOM WSI series",
        description="Convert a whole-slide image (Aperio SVS, Hamamatsu NDPI, Philips TIFF, "
        "OME-TIFF, tiled TIFF, anything OpenSlide reads) into DICOM VL Whole Slide Microscopy "
        "Image instances: one per pyramid level plus label/overview/thumbnail.")
    dz.add_argument("input", type=Path, nargs="+",
                    help="slide file; several are converted one after the other, each into "
                    "a series of its own (and a subfolder of -o named after the file)")
    dz.add_argument("-o", "--output", type=Path,
                    help="output folder (created; must not hold files of the same names)")
    dz.add_argument("--store", action="store_true",
                    help="store the series in the local archive (--data-dir etc.) instead of "
                    "keeping files; the same convert-then-store path as uploads")
    dz.add_argument("--reader", choices=["tiff", "openslide"], help="force a reader")
    dz.add_argument("--tile-size", type=int, help="output tile size (default: the source "
                    "tile size when it stores square JPEG tiles, else 256)")
    dz.add_argument("--codec", choices=CODEC_NAMES, default="jpeg",
                    help="codec of re-encoded tiles (default jpeg)")
    dz.add_argument("--quality", type=int, default=90,
                    help="JPEG quality 1-100; lossy jpeg2000: 90 means 47 dB PSNR (default 90)")
    dz.add_argument("--subsampling", choices=["420", "422", "444"],
                    help="JPEG chroma subsampling of re-encoded tiles (default: 444 when the "
                    "source JPEG keeps full chroma resolution, else 420)")
    dz.add_argument("--force-reencode", action="store_true",
                    help="re-encode the base level even when its tiles could be copied")
    dz.add_argument("--levels", choices=["full", "source"], default="full",
                    help="full: every pyramid level down to one tile (default); source: only "
                    "the levels the slide stores, tiles passed through where they can be, as "
                    "wsidicomizer and OrthancWSIDicomizer do by default (fastest; but a slide "
                    "that stores only its base then has no overview levels for viewers)")
    dz.add_argument("--downsample-factor", type=int, default=2,
                    help="size ratio of successive pyramid levels (default 2)")
    dz.add_argument("--workers", type=int, help="encoder threads (default: CPU count)")
    dz.add_argument("--no-associated", action="store_true",
                    help="skip label, overview and thumbnail images")
    dz.add_argument("--mpp", type=float,
                    help="base pixel spacing in µm, for slides that do not state it")
    meta = dz.add_argument_group("metadata", "Flags win over --metadata, which wins over "
                                 "the defaults (generated UIDs, empty patient attributes).")
    meta.add_argument("--metadata", type=Path, help="DICOM JSON dataset (PS3.18 F.2)")
    for flag, help_text in (
        ("--patient-id", "Patient ID"), ("--patient-name", "Patient's Name, e.g. Doe^Jane"),
        ("--patient-birth-date", "YYYYMMDD"), ("--patient-sex", "M, F or O"),
        ("--accession", "Accession Number"), ("--study-uid", "Study Instance UID"),
        ("--study-id", "Study ID"), ("--study-description", "Study Description"),
        ("--series-uid", "Series Instance UID"),
        ("--series-description", "Series Description"),
        ("--container-id", "Container (slide) Identifier; default: the file name"),
        ("--specimen-id", "Specimen Identifier; default: the container identifier"),
        ("--specimen-description", "Specimen Short Description"),
    ):
        meta.add_argument(flag, help=help_text)
    meta.add_argument("--series-number", type=int, help="Series Number")
    dz.add_argument("--upload", metavar="URL",
                    help="STOW-RS the written instances to this DICOMweb studies URL")
    dz.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _settings_flags(dz)
    dz.set_defaults(func=cmd_dicomize)


def cmd_dicomize(args: argparse.Namespace) -> int:
    """Convert slides into DICOM WSI series, one each (and optionally STOW-RS them)."""
    from dicomizer.metadata import SlideMetadata, check_shareable, load_metadata_json
    from dicomizer.options import ConversionOptions

    flags = SlideMetadata(
        patient_id=args.patient_id, patient_name=args.patient_name,
        patient_birth_date=args.patient_birth_date, patient_sex=args.patient_sex,
        accession_number=args.accession, study_instance_uid=args.study_uid,
        study_id=args.study_id, study_description=args.study_description,
        series_instance_uid=args.series_uid, series_description=args.series_description,
        series_number=args.series_number, container_identifier=args.container_id,
        specimen_identifier=args.specimen_id, specimen_description=args.specimen_description,
        extra=load_metadata_json(args.metadata) if args.metadata else None,
    )
    try:
        options = ConversionOptions(
            reader=args.reader, tile_size=args.tile_size, codec=args.codec,
            quality=args.quality, subsampling=args.subsampling,
            force_reencode=args.force_reencode, levels=args.levels,
            downsample_factor=args.downsample_factor,
            include_associated=not args.no_associated, mpp=args.mpp, metadata=flags,
            **({"workers": args.workers} if args.workers else {}),
        )
    except ValueError as exc:
        raise WsiArchiveError(str(exc)) from None
    # Process-wide switch, set once here: tifffile logs warnings about damaged files that
    # the readers turn into one-line errors themselves.
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    shown = [-1]

    def progress(done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if percent != shown[0]:
            shown[0] = percent
            _progress(done, total)

    if not args.store and args.output is None:
        raise InvalidInput("give -o OUTDIR, or --store to put the series in the archive")
    inputs: list[Path] = args.input
    if len(inputs) == 1:
        convert_one = _dicomize_and_store(args, options) if args.store else \
            _dicomize_to_folder(args, options, args.output)
        convert_one(inputs[0], None if args.quiet else progress)
        return 0
    check_shareable(options.metadata)
    converters = [_dicomize_and_store(args, options)] * len(inputs) if args.store else \
        [_dicomize_to_folder(args, options, folder)
         for folder in _batch_folders(inputs, args.output)]
    failed = 0
    for number, (source, convert_one) in enumerate(zip(inputs, converters, strict=True)):
        print(f"[{number + 1}/{len(inputs)}] {source}", file=sys.stderr)
        shown[0] = -1
        try:
            convert_one(source, None if args.quiet else progress)
        except WsiArchiveError as exc:
            # One unreadable slide does not stop the others; the exit status reports it.
            if not args.quiet:
                sys.stderr.write("\n")
            print(f"wsi: {exc.reason}", file=sys.stderr)
            failed += 1
    print(f"{len(inputs) - failed} of {len(inputs)} slides converted", file=sys.stderr)
    return 2 if failed else 0


SlideConversion = Callable[[Path, Any], None]
"""Converts one slide (its path, a progress callback or None) and reports what it wrote."""


def _batch_folders(inputs: list[Path], root: Path) -> list[Path]:
    """A subfolder of ``root`` per input, named after the file (``-2``, ``-3``... appended
    when two files share a name)."""
    folders: list[Path] = []
    taken: set[str] = set()
    for source in inputs:
        stem = source.stem or "slide"
        name, number = stem, 1
        while name in taken:
            number += 1
            name = f"{stem}-{number}"
        taken.add(name)
        folders.append(root / name)
    return folders


def _dicomize_to_folder(args: argparse.Namespace, options: Any, output: Path) -> SlideConversion:
    """``wsi dicomize -o``: write the series into ``output`` (and STOW-RS it with --upload)."""
    from dicomizer.convert import convert

    def convert_one(source: Path, progress: Any) -> None:
        result = convert(source, output, options, progress=progress)
        if progress is not None:
            sys.stderr.write("\n")
        print(result.summary(), file=sys.stderr)
        for path in result.files:
            print(path)
        if args.upload:
            from wsi.dicom.stow import stow_files

            stored = stow_files(args.upload, result.files)
            print(f"uploaded {stored} instance(s) to {args.upload}", file=sys.stderr)
    return convert_one


def _dicomize_and_store(args: argparse.Namespace, options: Any) -> SlideConversion:
    """``wsi dicomize --store``: the server's convert-then-store, run in this process."""
    from dicomweb.jobs import convert_and_store

    settings = _load(args)

    def convert_one(source: Path, progress: Any) -> None:
        archive = _build_archive(settings)
        work_dir = settings.data_dir / "conversions" / f"cli-{uuid.uuid4().hex}"
        try:
            result, stored = convert_and_store(archive, source, work_dir, options, progress)
        finally:
            archive.close()
        if progress is not None:
            sys.stderr.write("\n")
        print(result.summary(), file=sys.stderr)
        print(f"stored {len(stored)} instance(s) of series {result.series_uid} in "
              f"{settings.data_dir}", file=sys.stderr)
    return convert_one


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
    serve.add_argument("--no-dimse", dest="dimse_enabled", action="store_false", default=None,
                       help="do not start the DIMSE (DICOM network) server")
    serve.set_defaults(func=cmd_serve)
    _scu_parsers(sub)
    imp = sub.add_parser("import", help="ingest DICOM files from folders",
                         description="Ingest DICOM Part 10 files (recursively) into the archive.")
    imp.add_argument("paths", nargs="+", type=Path, help="files or folders")
    _settings_flags(imp)
    imp.set_defaults(func=cmd_import)
    _dicomize_parser(sub)
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
