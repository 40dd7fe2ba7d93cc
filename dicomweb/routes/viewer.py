"""The browser viewer: static pages under ``/viewer/``, OpenSeadragon from ``node_modules``.

The pages are plain HTML/JS/CSS (no build step); OpenSeadragon comes from the npm registry
(``make viewer/node_modules``) and is served from its package's build folder, as are the
prebuilt browser bundles of dicom-microscopy-viewer (the library behind Slim, with its
codec WebAssembly and web worker) and dicomweb-client, for ``/viewer/dmv.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, get
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

DEFAULT_VIEWER_DIR = Path(__file__).resolve().parents[2] / "viewer"
VIEWER_PREFIX = "/viewer"
_OSD_BUILD = Path("node_modules") / "openseadragon" / "build" / "openseadragon"
_VENDOR_BUILDS = {
    "openseadragon": _OSD_BUILD,
    "dicom-microscopy-viewer": Path("node_modules") / "dicom-microscopy-viewer" / "dist",
    "dicomweb-client": Path("node_modules") / "dicomweb-client" / "build",
}


@get("/", include_in_schema=False)
async def root() -> Redirect:
    """The service root opens the slide browser."""
    return Redirect(VIEWER_PREFIX + "/")


async def _trailing_slash(request: Request) -> Redirect | None:
    """``/viewer`` → ``/viewer/``, so that the pages' relative links resolve."""
    if request.scope.get("raw_path", b"").split(b"?")[0] == VIEWER_PREFIX.encode():
        query = request.url.query
        return Redirect(VIEWER_PREFIX + "/" + (f"?{query}" if query else ""))
    return None


def viewer_routes(viewer_dir: Path = DEFAULT_VIEWER_DIR) -> list[Any]:
    """Routers for the viewer pages and the vendored npm builds (those installed)."""
    if not viewer_dir.is_dir():
        return []
    routes: list[Any] = [root]
    for package, build in _VENDOR_BUILDS.items():
        if (viewer_dir / build).is_dir():
            routes.append(create_static_files_router(
                path=f"{VIEWER_PREFIX}/vendor/{package}", directories=[viewer_dir / build],
                name=f"viewer-{package}",
            ))
    routes.append(create_static_files_router(
        path=VIEWER_PREFIX, directories=[viewer_dir / "static"], html_mode=True, name="viewer",
        before_request=_trailing_slash,
    ))
    return routes
