// Slide page: OpenSeadragon over the archive's tile endpoint (or its IIIF service with
// ?source=iiif), navigator, scale bar, magnification, label/overview, metadata, focal plane
// and optical path switches, and a URL hash that restores the viewport.

import { el, formatDate, formatName, getJson, optionalImage, pageUrl } from "./api.js";
import { ScaleBar } from "./scalebar.js";

const params = new URLSearchParams(location.search);
const seriesUid = params.get("series");
const useIiif = params.get("source") === "iiif";

/** Test and debugging hooks: what was loaded and drawn, by pyramid level (0 = full size). */
const state = { ready: false, descriptor: null, viewer: null, loaded: {}, drawn: {} };
window.wsi = state;

function showError(message) {
  const errorBox = document.getElementById("error");
  errorBox.textContent = message;
  errorBox.hidden = false;
}

/** Resolves once the page is parsed (this module is loaded async, it may run before). */
const domReady = new Promise((resolve) => {
  if (document.readyState !== "loading") resolve();
  else document.addEventListener("DOMContentLoaded", () => resolve(), { once: true });
});

/** Resolves once OpenSeadragon's (deferred) script has run, or the page has loaded without. */
const openSeadragonReady = new Promise((resolve) => {
  if (typeof OpenSeadragon !== "undefined" || document.readyState === "complete") resolve();
  else {
    document.getElementById("openseadragon")?.addEventListener("load", () => resolve());
    window.addEventListener("load", () => resolve(), { once: true });
  }
});

/** An OpenSeadragon tile source over /wsi/series/{uid}/tiles: the stored levels exactly. */
function tileSource(desc, plane, path) {
  const levels = desc.levels;
  const count = levels.length;
  const base = levels[0];
  const level = (osdLevel) => levels[count - 1 - osdLevel];
  let extra = "";
  if (plane !== null) extra += `&z=${plane}`;
  if (path !== null) extra += `&path=${encodeURIComponent(path)}`;
  return new OpenSeadragon.TileSource({
    width: base.width,
    height: base.height,
    tileWidth: base.tile_width,
    tileHeight: base.tile_height,
    tileOverlap: 0,
    minLevel: 0,
    maxLevel: count - 1,
    getLevelScale: (osdLevel) => (level(osdLevel) ? level(osdLevel).width / base.width : NaN),
    getNumTiles: (osdLevel) =>
      new OpenSeadragon.Point(level(osdLevel).tiles_across, level(osdLevel).tiles_down),
    getTileWidth: (osdLevel) => level(osdLevel).tile_width,
    getTileHeight: (osdLevel) => level(osdLevel).tile_height,
    getTileUrl: (osdLevel, x, y) =>
      desc.tiles
        .replace("{level}", String(count - 1 - osdLevel))
        .replace("{col}", String(x))
        .replace("{row}", String(y)) + extra,
  });
}

/** Micrometres per level-0 pixel (horizontal), or null without pixel spacing. */
function micrometresPerPixel(desc) {
  const spacing = desc.pixel_spacing_mm;
  return spacing ? spacing[1] * 1000 : null;
}

/** Objective magnification of level 0: as stated, else from pixel spacing (10 µm / mpp). */
function baseMagnification(desc) {
  if (desc.objective_power) return desc.objective_power;
  const mpp = micrometresPerPixel(desc);
  return mpp ? 10 / mpp : null;
}

function readHash() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const number = (key) => (hash.has(key) ? Number(hash.get(key)) : null);
  return { x: number("x"), y: number("y"), zoom: number("zoom"),
           z: hash.get("z"), path: hash.get("path") };
}

function writeHash(viewer, selection) {
  const viewport = viewer.viewport;
  const center = viewport.viewportToImageCoordinates(viewport.getCenter(true));
  const zoom = viewport.viewportToImageZoom(viewport.getZoom(true));
  const hash = new URLSearchParams({
    x: center.x.toFixed(0), y: center.y.toFixed(0), zoom: zoom.toPrecision(4),
  });
  if (selection.plane !== null) hash.set("z", selection.plane);
  if (selection.path !== null) hash.set("path", selection.path);
  history.replaceState(null, "", `${location.pathname}${location.search}#${hash}`);
}

function fillMetadata(desc) {
  const c = desc.context;
  const rows = [
    ["Patient", formatName(c.patient_name)], ["Patient ID", c.patient_id],
    ["Birth date", formatDate(c.patient_birth_date)], ["Sex", c.patient_sex],
    ["Study date", formatDate(c.study_date)], ["Accession", c.accession_number],
    ["Study", c.study_description], ["Series", c.series_description],
    ["Container", c.container_id], ["Specimen", (c.specimens || []).join("; ")],
    ["Scanner", [c.manufacturer, c.model].filter(Boolean).join(" ")],
    ["Size", `${desc.width} × ${desc.height} px`],
    ["Pixel spacing", desc.pixel_spacing_mm
      ? `${(desc.pixel_spacing_mm[1] * 1000).toFixed(4)} µm/px` : "unknown"],
    ["Objective", desc.objective_power ? `${desc.objective_power}×` : ""],
  ];
  const list = document.getElementById("metadata");
  for (const [name, text] of rows) {
    if (text) list.append(el("dt", {}, name), el("dd", {}, text));
  }
  const table = document.getElementById("levels");
  table.append(el("tr", {}, el("th", {}, "Level"), el("th", {}, "Size"),
    el("th", {}, "Tiles"), el("th", {}, "Downsample")));
  for (const level of desc.levels) {
    table.append(el("tr", {},
      el("td", {}, level.level), el("td", {}, `${level.width} × ${level.height}`),
      el("td", {}, `${level.tiles_across} × ${level.tiles_down}${level.sparse ? "*" : ""}`),
      el("td", {}, level.downsample.toFixed(2))));
  }
  if (desc.levels.some((level) => level.sparse)) {
    table.after(el("p", { className: "muted note" }, "* sparse tiling: unscanned tiles are white"));
  }
  const associated = document.getElementById("associated");
  for (const kind of ["label", "overview"]) {
    const url = desc.associated[kind];
    if (!url) continue;
    const figure = el("figure", { className: kind });
    figure.append(optionalImage(url, kind, kind, figure), el("figcaption", {}, kind));
    associated.append(figure);
  }
  if (!associated.children.length) associated.hidden = true;
  document.getElementById("links").append(
    el("a", { href: `${desc.dicomweb.series}/metadata`, target: "_blank" }, "DICOM metadata"),
    el("a", { href: desc.iiif, target: "_blank" }, "IIIF info.json"),
  );
  const title = [formatName(c.patient_name), c.series_description || c.study_description]
    .filter(Boolean).join(" — ");
  document.getElementById("title").textContent = title;
  document.title = `${title || "Slide"} · WSI Archive`;
}

function setupSwitch(controlId, selectId, options, selected, onChange) {
  if (options.length < 2) return;
  const select = document.getElementById(selectId);
  for (const [val, label] of options) select.append(el("option", { value: val }, label));
  select.value = selected;
  document.getElementById(controlId).hidden = false;
  select.addEventListener("change", () => onChange(select.value));
}

/** The topbar's zoom, fit and full-screen buttons (in place of OpenSeadragon's image buttons,
 *  whose 16 PNGs would compete with the first tiles for the browser's six connections). */
function wireViewButtons(viewer) {
  const zoom = (factor) => {
    viewer.viewport.zoomBy(factor);
    viewer.viewport.applyConstraints();
  };
  document.getElementById("zoom-in").addEventListener("click", () => zoom(1.5));
  document.getElementById("zoom-out").addEventListener("click", () => zoom(1 / 1.5));
  document.getElementById("home").addEventListener("click", () => viewer.viewport.goHome());
  document.getElementById("full-screen").addEventListener(
    "click", () => viewer.setFullScreen(!viewer.isFullScreen()));
}

async function main() {
  // The descriptor is asked for first, while OpenSeadragon's script is still loading.
  const described = seriesUid
    ? getJson(`/wsi/series/${encodeURIComponent(seriesUid)}`).then(
      (value) => ({ value }), (error) => ({ error }))
    : null;
  await domReady;
  for (const link of document.querySelectorAll("a[data-keep-api]")) {
    link.href = pageUrl(link.getAttribute("href"));
  }
  if (!seriesUid) {
    showError("No slide given: open a slide from the list (slide.html?series=UID).");
    return;
  }
  await openSeadragonReady;
  if (typeof OpenSeadragon === "undefined") {
    showError("OpenSeadragon is not installed on this server: run `make viewer/node_modules`.");
    return;
  }
  const { value: desc, error } = await described;
  if (error) {
    showError(`Cannot open slide ${seriesUid}: ${error.message}`);
    return;
  }
  state.descriptor = desc;
  fillMetadata(desc);

  const hash = readHash();
  // IIIF has no focal plane or optical path parameter: it shows the defaults.
  const selection = {
    plane: !useIiif && desc.focal_planes_um.length > 1 ? (hash.z ?? "0") : null,
    path: !useIiif && desc.optical_paths.length > 1 ? (hash.path ?? desc.optical_paths[0].id)
      : null,
  };
  const source = () => (useIiif ? desc.iiif : tileSource(desc, selection.plane, selection.path));
  const viewer = OpenSeadragon({
    element: document.getElementById("osd"),
    prefixUrl: "vendor/openseadragon/images/",
    tileSources: source(),
    // The HTML drawer lets the browser composite the tile images itself; the canvas drawer
    // first copies each tile into a canvas of its own, which made the first view ~20 % slower
    // in headless Chromium (median 0.71-0.76 s against 0.88-0.92 s, bench/README.md).
    // ?drawer=canvas or webgl picks another one.
    drawer: params.get("drawer") || "html",
    crossOriginPolicy: "Anonymous",
    showNavigator: true,
    showNavigationControl: false,
    navigatorPosition: "BOTTOM_RIGHT",
    navigatorAutoFade: false,
    autoHideControls: false,
    showRotationControl: false,
    maxZoomPixelRatio: 2,
    visibilityRatio: 0.5,
    animationTime: 0.6,
    timeout: 60000,
    // Tiles are cheap for this server (stored frames, ~1 ms each): ask for every tile of the
    // view at once (the browser queues them on its connections; a limit of 8 left gaps of
    // 100-200 ms between batches) and draw the visible level directly instead of climbing
    // the pyramid one level at a time.
    imageLoaderLimit: 0,
    maxTilesPerFrame: 64,
    immediateRender: true,
    // Load the level nearest the screen's resolution (between 0.7 and 1.4 screen pixels per
    // image pixel, as OpenLayers does), not the next sharper one OpenSeadragon's default of
    // 0.5 asks for: four times fewer tiles per view for a difference hard to see.
    minPixelRatio: Math.SQRT1_2,
  });
  state.viewer = viewer;
  wireViewButtons(viewer);

  const levelCount = desc.levels.length;
  const pyramidLevel = (tile) => {
    if (!useIiif) return levelCount - 1 - tile.level;
    // IIIF levels are powers of two: report the stored level with the nearest downsample.
    const scale = 2 ** (viewer.world.getItemAt(0).source.maxLevel - tile.level);
    let best = 0;
    desc.levels.forEach((l, i) => { if (l.downsample <= scale * 1.01) best = i; });
    return best;
  };
  const count = (table, level) => { table[level] = (table[level] || 0) + 1; };
  viewer.addHandler("tile-loaded", (e) => count(state.loaded, pyramidLevel(e.tile)));
  viewer.addHandler("tile-drawn", (e) => count(state.drawn, pyramidLevel(e.tile)));
  viewer.addHandler("tile-load-failed", (e) => showError(`A tile failed to load: ${e.message}`));

  const scaleBar = new ScaleBar(document.getElementById("osd"));
  const magnification = document.getElementById("magnification");
  const mpp = micrometresPerPixel(desc);
  const baseMag = baseMagnification(desc);
  const update = () => {
    const imageZoom = viewer.viewport.viewportToImageZoom(viewer.viewport.getZoom(true));
    if (mpp) scaleBar.update(mpp / imageZoom);
    magnification.textContent = baseMag ? `${(baseMag * imageZoom).toFixed(1)}×` : "";
  };
  viewer.addHandler("animation", update);
  viewer.addHandler("animation-finish", () => writeHash(viewer, selection));

  viewer.addHandler("open", () => {
    if (hash.zoom && hash.x !== null && hash.y !== null) {
      const viewport = viewer.viewport;
      viewport.zoomTo(viewport.imageToViewportZoom(hash.zoom), null, true);
      viewport.panTo(viewport.imageToViewportCoordinates(hash.x, hash.y), true);
    }
    update();
    state.ready = true;
  });
  viewer.addHandler("open-failed", (e) => showError(`Cannot open the slide: ${e.message}`));

  const reopen = () => {
    viewer.addTiledImage({ tileSource: source(), index: 0, replace: true });
    writeHash(viewer, selection);
  };
  if (!useIiif) {
    setupSwitch("plane-control", "plane",
      desc.focal_planes_um.map((z, i) => [String(i), `${z} µm`]), selection.plane,
      (val) => { selection.plane = val; reopen(); });
    setupSwitch("path-control", "path",
      desc.optical_paths.map((p) => [p.id, p.description || p.id]), selection.path,
      (val) => { selection.path = val; reopen(); });
  }

  const toggle = document.getElementById("panel-toggle");
  toggle.addEventListener("click", () => {
    const panel = document.getElementById("panel");
    panel.hidden = !panel.hidden;
    toggle.setAttribute("aria-expanded", String(!panel.hidden));
  });
}

main();
