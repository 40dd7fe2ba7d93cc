// dicom-microscopy-viewer against this server's DICOMweb: ?study=&series=[&api=base URL].
// State for tests in window.dmvState: {ready, error, framesLoaded, frameErrors, renders}.
/* global DICOMwebClient, dicomMicroscopyViewer */
(async () => {
  const state = { ready: false, error: null, framesLoaded: 0, frameErrors: 0, renders: 0 };
  window.dmvState = state;
  const status = document.getElementById("status");
  const params = new URLSearchParams(location.search);
  const base = (params.get("api") || location.origin).replace(/\/$/, "");
  const dmv = dicomMicroscopyViewer;
  try {
    const client = new DICOMwebClient.api.DICOMwebClient({ url: `${base}/dicom-web` });
    const study = params.get("study");
    const series = params.get("series");
    const instances = await client.retrieveSeriesMetadata({
      studyInstanceUID: study, seriesInstanceUID: series,
    });
    const images = instances
      .map((metadata) => new dmv.metadata.VLWholeSlideMicroscopyImage({ metadata }))
      .filter((image) => ["VOLUME", "THUMBNAIL"].includes(image.ImageType[2]));
    const container = document.getElementById("dmv");
    const events = dmv.events.EVENTS;
    container.addEventListener(events.FRAME_LOADING_ENDED, (event) => {
      if (event.detail.payload && event.detail.payload.pixelArray) state.framesLoaded += 1;
    });
    container.addEventListener(events.FRAME_LOADING_ERROR, () => { state.frameErrors += 1; });
    const viewer = new dmv.viewer.VolumeImageViewer({
      client, metadata: images,
      errorInterceptor: (error) => { state.error = String(error && (error.message || error)); },
    });
    viewer.render({ container });
    window.dmvViewer = viewer;
    viewer.getMap().on("rendercomplete", () => {
      state.renders += 1;
      status.textContent = `${images.length} images, ${state.framesLoaded} frames drawn`;
    });
    state.ready = true;
  } catch (error) {
    state.error = String(error && (error.stack || error));
    status.textContent = `error: ${error}`;
    throw error;
  }
})();
