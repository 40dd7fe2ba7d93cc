"""``create_app``: wiring only. Services are built by the composition root (``wsi.cli``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from dicomweb.errors import EXCEPTION_HANDLERS
from dicomweb.fast_path import FastPath
from dicomweb.head import HeadAsGet
from dicomweb.routes import frames, iiif, modalities, qido, rendered, slides, tiles, wado
from dicomweb.routes.manage import delete_instance, delete_series, delete_study, healthz
from dicomweb.routes.stow import store_instances
from dicomweb.routes.viewer import DEFAULT_VIEWER_DIR, viewer_routes
from dicomweb.services import Services
from dicomweb.urls import DICOMWEB_PREFIX

EXPOSED_HEADERS = [
    "Warning", "ETag", "Content-Location", "Content-Type", "Content-Length", "Link", "Location",
]


def create_app(
    services: Services,
    on_startup: Sequence[Callable[[], Any]] = (),
    on_shutdown: Sequence[Callable[[], Any]] = (),
    viewer_dir: Path = DEFAULT_VIEWER_DIR,
) -> Litestar:
    """The Litestar application: DICOMweb under ``/dicom-web``, slide tiles under ``/wsi``,
    IIIF under ``/iiif/3``, the browser viewer under ``/viewer``."""
    dicomweb_router = Router(
        path=DICOMWEB_PREFIX,
        route_handlers=[
            store_instances,
            *qido.ROUTES,
            # Rendered and frame routes come before the catch-all bulk data path.
            *rendered.ROUTES,
            *frames.ROUTES,
            *wado.ROUTES,
            delete_study,
            delete_series,
            delete_instance,
        ],
        tags=["DICOMweb"],
    )
    settings = services.settings
    return Litestar(
        route_handlers=[
            dicomweb_router, healthz, *modalities.ROUTES, *slides.ROUTES, *tiles.ROUTES,
            *iiif.ROUTES,
            *viewer_routes(viewer_dir),
        ],
        dependencies={
            "services": Provide(lambda: services, use_cache=True, sync_to_thread=False)
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        # Logging is set up once by the composition root (wsi.cli); Litestar's default would
        # put its own handler and format on the root logger of each worker. Unexpected errors
        # are logged with their traceback by dicomweb.errors.
        logging_config=None,
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"],
            allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
        ),
        openapi_config=OpenAPIConfig(title="WSI Archive", version="0.1.0", path="/schema"),
        on_startup=list(on_startup),
        on_shutdown=[
            *on_shutdown,
            *([services.jobs.shutdown] if services.jobs is not None else []),
            services.archive.close,
        ],
    )


def create_asgi_app(
    services: Services,
    on_startup: Sequence[Callable[[], Any]] = (),
    on_shutdown: Sequence[Callable[[], Any]] = (),
    viewer_dir: Path = DEFAULT_VIEWER_DIR,
) -> HeadAsGet:
    """The application as served: the Litestar app behind the tile and frame fast path,
    with HEAD answered for every GET route."""
    app = create_app(services, on_startup, on_shutdown, viewer_dir)
    return HeadAsGet(FastPath(app, services, app.cors_config or CORSConfig()))
