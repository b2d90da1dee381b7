// A dependency-free SVG chart of training curves (loss per step, accuracy per evaluation) for a run's
// directory: stacked panels sharing the step axis, "nice" ticks (1, 2, 5 × 10^k), a marker on every
// point of a short series (so a one-evaluation accuracy series is visible), and a fixed range where the
// quantity has one (accuracy: 0..1).

/** One line of a panel. */
export interface Series {
  /** Legend text. */
  name: string;
  /** [x, y] points; non-finite y values are skipped. */
  points: [number, number][];
  /** CSS color. */
  color: string;
}

/** A panel: its y label, series, and optionally a fixed y range (else the data's, padded to nice ticks). */
export interface Panel {
  /** The y-axis label. */
  ylabel: string;
  /** The lines. */
  series: Series[];
  /** Fixed y range, e.g. [0, 1] for an accuracy. */
  range?: [number, number];
}

/** Series with at most this many points get a marker on every point. */
const MARKERS_UP_TO = 60;

/**
 * "Nice" ticks covering [lo, hi]: about `count` steps of 1, 2 or 5 × 10^k, the first ≤ lo and the last
 * ≥ hi. A degenerate range is widened around its value.
 */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi - lo < 1e-12) {
    const pad = Math.abs(lo) > 1e-12 ? Math.abs(lo) * 0.1 : 1;
    [lo, hi] = [lo - pad, hi + pad];
  }
  const raw = (hi - lo) / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * 0.999)!;
  const first = Math.floor(lo / step + 1e-9), last = Math.ceil(hi / step - 1e-9);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const ticks: number[] = [];
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toFixed(decimals)));
  return ticks;
}

/** Stacked panels sharing the step axis; returns SVG text. */
export function lineChart(title: string, panels: Panel[]): string {
  const W = 720, PH = 220, M = { l: 60, r: 20, t: 30, b: 30 };
  const H = M.t + panels.length * (PH + M.b) + 10;
  const xs = panels.flatMap((p) => p.series.flatMap((s) => s.points.map((q) => q[0]))).filter(
    Number.isFinite,
  );
  const xt = niceTicks(Math.min(0, ...xs), Math.max(1, ...xs), 6).map(Math.round).filter((v, i, a) =>
    a.indexOf(v) === i
  );
  const x0 = xt[0], x1 = xt.at(-1)!;
  const sx = (x: number) => M.l + ((x - x0) / (x1 - x0)) * (W - M.l - M.r);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${esc(title)}</text>`,
  ];
  panels.forEach((p, k) => {
    const top = M.t + k * (PH + M.b);
    const ys = p.series.flatMap((s) => s.points.map((q) => q[1])).filter(Number.isFinite);
    const yt = p.range ? niceTicks(p.range[0], p.range[1]) : niceTicks(Math.min(...ys), Math.max(...ys));
    const y0 = yt[0], y1 = yt.at(-1)!;
    const sy = (y: number) => top + PH - ((y - y0) / (y1 - y0)) * PH;
    for (const y of yt) {
      out.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${sy(y)}" y2="${sy(y)}" stroke="#eee"/>`);
      out.push(`<text x="${M.l - 4}" y="${sy(y) + 4}" text-anchor="end">${y}</text>`);
    }
    for (const x of xt) {
      out.push(`<line x1="${sx(x)}" x2="${sx(x)}" y1="${top}" y2="${top + PH}" stroke="#f4f4f4"/>`);
    }
    out.push(
      `<rect x="${M.l}" y="${top}" width="${W - M.l - M.r}" height="${PH}" fill="none" stroke="#999"/>`,
      `<text x="14" y="${top + PH / 2}" transform="rotate(-90 14 ${top + PH / 2})" text-anchor="middle">${
        esc(p.ylabel)
      }</text>`,
    );
    p.series.forEach((s, j) => {
      const pts = s.points.filter((q) => Number.isFinite(q[0]) && Number.isFinite(q[1]));
      const xy = pts.map((q) => [sx(q[0]).toFixed(1), sy(q[1]).toFixed(1)]);
      if (xy.length > 1) {
        out.push(
          `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${
            xy.map((q) => q.join(",")).join(" ")
          }"/>`,
        );
      }
      if (xy.length <= MARKERS_UP_TO) {
        for (const [i, [x, y]] of xy.entries()) {
          out.push(
            `<circle cx="${x}" cy="${y}" r="3" fill="${s.color}"><title>${esc(s.name)} ${pts[i][1]} at step ${
              pts[i][0]
            }</title></circle>`,
          );
        }
      }
      out.push(
        `<text x="${W - M.r - 6}" y="${top + 14 + 13 * j}" text-anchor="end" fill="${s.color}">${
          esc(s.name)
        }</text>`,
      );
    });
  });
  const bottom = M.t + panels.length * (PH + M.b) - M.b;
  for (const x of xt) out.push(`<text x="${sx(x)}" y="${bottom + 14}" text-anchor="middle">${x}</text>`);
  out.push(`<text x="${W / 2}" y="${bottom + 27}" text-anchor="middle">step</text>`, `</svg>`);
  return out.join("\n");
}

function esc(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" }[c]!));
}
