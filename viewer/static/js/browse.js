// Browse page: studies from QIDO-RS with their slides (SM series), thumbnails and labels.

import { API, el, formatDate, formatName, getJson, optionalImage, pageUrl, value } from "./api.js";

const PAGE_SIZE = 20;
const form = document.getElementById("search");
const list = document.getElementById("studies");
const status = document.getElementById("status");
const prev = document.getElementById("prev");
const next = document.getElementById("next");
const pageLabel = document.getElementById("page");
let offset = 0;

for (const link of document.querySelectorAll("a[data-keep-api]")) {
  link.href = pageUrl(link.getAttribute("href"));
}

/** QIDO-RS matching keys from the form: names match anywhere, IDs by prefix. */
function filters() {
  const data = new FormData(form);
  const query = new URLSearchParams();
  const wild = (text, both) => (/[*?]/.test(text) ? text : both ? `*${text}*` : `${text}*`);
  const name = data.get("PatientName").trim();
  if (name) query.set("PatientName", wild(name, true));
  for (const key of ["PatientID", "AccessionNumber"]) {
    const text = data.get(key).trim();
    if (text) query.set(key, wild(text, false));
  }
  const from = data.get("from").replaceAll("-", "");
  const to = data.get("to").replaceAll("-", "");
  if (from || to) query.set("StudyDate", `${from}-${to}`);
  return query;
}

function slideCard(series) {
  const uid = value(series, "0020000E");
  const href = pageUrl("slide.html", { series: uid });
  const base = `${API}/wsi/series/${uid}`;
  const images = el("div", { className: "card-images" });
  images.append(
    optionalImage(`${base}/thumbnail`, "thumbnail", "thumb"),
    optionalImage(`${base}/label`, "label", "label"),
  );
  const description = value(series, "0008103E") || "Slide";
  const count = value(series, "00201209", "");
  return el("a", { className: "card", href, dataset: { series: uid } },
    images,
    el("div", { className: "card-title" }, description),
    el("div", { className: "card-meta" },
      `Series ${value(series, "00200011", "–")}`, count ? ` · ${count} instances` : ""),
  );
}

async function studyBlock(study) {
  const uid = value(study, "0020000D");
  const slides = el("div", { className: "cards" }, el("span", { className: "muted" }, "Loading…"));
  const block = el("section", { className: "study", dataset: { study: uid } },
    el("div", { className: "study-head" },
      el("span", { className: "patient" }, formatName(value(study, "00100010")) || "(no name)"),
      el("span", { className: "muted" }, `ID ${value(study, "00100020") || "–"}`),
      el("span", {}, formatDate(value(study, "00080020"))),
      el("span", { className: "muted" }, `Acc. ${value(study, "00080050") || "–"}`),
      el("span", { className: "description" }, value(study, "00081030")),
    ),
    slides,
  );
  getJson(`/dicom-web/studies/${uid}/series?includefield=NumberOfSeriesRelatedInstances`,
    "application/dicom+json")
    .then((series) => {
      slides.replaceChildren();
      const sm = series.filter((s) => value(s, "00080060") === "SM");
      for (const s of sm) slides.append(slideCard(s));
      const others = series.filter((s) => value(s, "00080060") !== "SM");
      if (others.length) {
        const names = others.map((s) => `${value(s, "00080060")} ${value(s, "0008103E")}`.trim());
        slides.append(el("div", { className: "muted other-series" },
          `${others.length} other series: ${names.join(", ")}`));
      }
      if (!sm.length && !others.length) slides.append(el("span", { className: "muted" }, "No series"));
    })
    .catch((error) => slides.replaceChildren(el("span", { className: "error" }, error.message)));
  return block;
}

async function search() {
  const query = filters();
  query.set("limit", String(PAGE_SIZE + 1));
  query.set("offset", String(offset));
  query.set("includefield", "ModalitiesInStudy");
  status.textContent = "Searching…";
  status.classList.remove("error");
  list.replaceChildren();
  try {
    const studies = await getJson(`/dicom-web/studies?${query}`, "application/dicom+json");
    const shown = studies.slice(0, PAGE_SIZE);
    status.textContent = shown.length
      ? `Studies ${offset + 1}–${offset + shown.length}` : "No studies match.";
    for (const study of shown) list.append(await studyBlock(study));
    prev.disabled = offset === 0;
    next.disabled = studies.length <= PAGE_SIZE;
    pageLabel.textContent = `Page ${offset / PAGE_SIZE + 1}`;
  } catch (error) {
    status.textContent = `Search failed: ${error.message}`;
    status.classList.add("error");
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  offset = 0;
  search();
});
form.addEventListener("reset", () => setTimeout(() => { offset = 0; search(); }));
prev.addEventListener("click", () => { offset = Math.max(0, offset - PAGE_SIZE); search(); });
next.addEventListener("click", () => { offset += PAGE_SIZE; search(); });
search();
