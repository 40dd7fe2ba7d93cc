// Upload page: POST a slide file to /api/slides (multipart/form-data, field "file") with
// upload progress, then poll GET /api/jobs/{id} until the conversion is done or failed.
// Job JSON: {"state": "queued|running|storing|done|failed", "progress": 0..1, "series_uid",
// "study_uid", "error"}. When a conversion is done the page opens the slide. The job id is read from the POST answer ("id" or "job_id") or
// from its Location header.

import { API, el, pageUrl } from "./api.js";

const POLL_MS = 1000;
const OPEN_DELAY_MS = 800;
const STATE_TEXT = { queued: "Queued…", running: "Converting…", storing: "Storing in the archive…" };
const drop = document.getElementById("drop");
const input = document.getElementById("file");
const jobs = document.getElementById("jobs");

for (const link of document.querySelectorAll("a[data-keep-api]")) {
  link.href = pageUrl(link.getAttribute("href"));
}

function jobView(file) {
  const bar = el("progress", { max: 1, value: 0 });
  const text = el("span", { className: "job-state" }, "Uploading…");
  const view = el("div", { className: "job" },
    el("div", { className: "job-name" }, file.name, el("span", { className: "muted" },
      ` ${(file.size / 1048576).toFixed(1)} MB`)),
    bar, text);
  jobs.prepend(view);
  return {
    progress(fraction, message) {
      bar.value = fraction;
      text.textContent = message;
    },
    fail(message) {
      view.classList.add("failed");
      bar.remove();
      text.textContent = message;
      text.classList.add("error");
    },
    done(job) {
      bar.value = 1;
      const href = job.series_uid ? pageUrl("slide.html", { series: job.series_uid }) : null;
      text.replaceChildren("Done: ", href ? el("a", { href }, "open the slide") : "stored");
      view.classList.add("done");
      if (href) setTimeout(() => window.location.assign(href), OPEN_DELAY_MS);
    },
  };
}

function reasonOf(xhr) {
  try {
    const body = JSON.parse(xhr.responseText);
    return body.error || body.detail || xhr.statusText;
  } catch {
    return xhr.statusText || "no answer";
  }
}

function upload(file) {
  const view = jobView(file);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `${API}/api/slides`);
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) {
      view.progress(e.loaded / e.total,
        `Uploading… ${Math.round((100 * e.loaded) / e.total)} %`);
    }
  });
  xhr.addEventListener("error", () => view.fail("Upload failed: the server could not be reached."));
  xhr.addEventListener("load", () => {
    if (xhr.status === 404 || xhr.status === 405) {
      view.fail(`Upload failed: HTTP ${xhr.status} — this server has no slide upload ` +
        `endpoint (POST /api/slides). ${reasonOf(xhr)}`);
      return;
    }
    if (xhr.status < 200 || xhr.status >= 300) {
      view.fail(`Upload failed: HTTP ${xhr.status} — ${reasonOf(xhr)}`);
      return;
    }
    let id = null;
    try {
      const body = JSON.parse(xhr.responseText || "{}");
      id = body.id ?? body.job_id ?? (body.job && body.job.id) ?? null;
    } catch { /* the Location header may still name the job */ }
    const location = xhr.getResponseHeader("Location");
    if (id === null && location) id = location.split("/").filter(Boolean).pop();
    if (id === null) {
      view.fail("Upload finished, but the server named no job to follow.");
      return;
    }
    view.progress(0, "Queued…");
    poll(String(id), view);
  });
  const form = new FormData();
  form.append("file", file, file.name);
  xhr.send(form);
}

async function poll(id, view) {
  let job;
  try {
    const response = await fetch(`${API}/api/jobs/${encodeURIComponent(id)}`,
      { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    job = await response.json();
  } catch (error) {
    view.fail(`Cannot follow job ${id}: ${error.message}`);
    return;
  }
  const progress = Math.max(0, Math.min(1, Number(job.progress) || 0));
  if (job.state === "done") view.done(job);
  else if (job.state === "failed") view.fail(`Conversion failed: ${job.error || "no reason given"}`);
  else {
    const percent = job.state === "running" ? ` ${Math.round(progress * 100)} %` : "";
    view.progress(progress, `${STATE_TEXT[job.state] || job.state}${percent}`);
    setTimeout(() => poll(id, view), POLL_MS);
  }
}

drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  for (const file of e.dataTransfer.files) upload(file);
});
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
input.addEventListener("change", () => {
  for (const file of input.files) upload(file);
  input.value = "";
});
