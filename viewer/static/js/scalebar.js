// A scale bar for a zoomable slide: a bar of a round physical length and its label.

const STEPS = [1, 2, 5];

/** The largest 1, 2 or 5 × 10^k micrometres not longer than `maxMicrometres`. */
export function niceLength(maxMicrometres) {
  if (!(maxMicrometres > 0)) return 0;
  const power = Math.pow(10, Math.floor(Math.log10(maxMicrometres)));
  let best = power;
  for (const step of STEPS) if (step * power <= maxMicrometres) best = step * power;
  return best;
}

/** "500 µm", "1 mm", "0.5 µm": the label of a length in micrometres. */
export function formatLength(micrometres) {
  if (micrometres >= 1000) return `${+(micrometres / 1000).toPrecision(3)} mm`;
  return `${+micrometres.toPrecision(3)} µm`;
}

export class ScaleBar {
  /** @param {HTMLElement} container where the bar is drawn; `maxWidth` in CSS pixels */
  constructor(container, maxWidth = 160) {
    this.maxWidth = maxWidth;
    this.element = document.createElement("div");
    this.element.className = "scalebar";
    this.bar = document.createElement("div");
    this.bar.className = "scalebar-bar";
    this.label = document.createElement("div");
    this.label.className = "scalebar-label";
    this.element.append(this.label, this.bar);
    container.append(this.element);
  }

  /** Redraw for a display scale of `micrometresPerPixel` (per CSS pixel). */
  update(micrometresPerPixel) {
    const length = niceLength(micrometresPerPixel * this.maxWidth);
    if (!length) {
      this.element.hidden = true;
      return;
    }
    this.element.hidden = false;
    this.bar.style.width = `${Math.round(length / micrometresPerPixel)}px`;
    this.label.textContent = formatLength(length);
  }
}
