// A dependency-free SVG chart of training curves (loss per step, accuracy per eval), for --out.

export interface Series {
  name: string;
  points: [number, number][];
  color: string;
}

/** Two stacked panels sharing the step axis; returns SVG text. */
export function lineChart(title: string, panels: { ylabel: string; series: Series[] }[]): string {
  const W = 720, PH = 220, M = { l: 60, r: 20, t: 30, b: 30 };
  const H = M.t + panels.length * (PH + M.b) + 10;
  const all = panels.flatMap((p) => p.series.flatMap((s) => s.points.map((q) => q[0])));
  const x0 = Math.min(0, ...all), x1 = Math.max(1, ...all);
  const sx = (x: number) => M.l + ((x - x0) / (x1 - x0)) * (W - M.l - M.r);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${esc(title)}</text>`,
  ];
  panels.forEach((p, k) => {
    const top = M.t + k * (PH + M.b);
    const ys = p.series.flatMap((s) => s.points.map((q) => q[1])).filter(Number.isFinite);
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (!ys.length) [y0, y1] = [0, 1];
    if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
    const sy = (y: number) => top + PH - ((y - y0) / (y1 - y0)) * PH;
    out.push(
      `<rect x="${M.l}" y="${top}" width="${W - M.l - M.r}" height="${PH}" fill="none" stroke="#999"/>`,
    );
    for (let i = 0; i <= 4; i++) {
      const y = y0 + ((y1 - y0) * i) / 4;
      out.push(`<text x="${M.l - 4}" y="${sy(y) + 4}" text-anchor="end">${fmt(y)}</text>`);
      out.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${sy(y)}" y2="${sy(y)}" stroke="#eee"/>`);
    }
    out.push(
      `<text x="14" y="${top + PH / 2}" transform="rotate(-90 14 ${top + PH / 2})" text-anchor="middle">${
        esc(p.ylabel)
      }</text>`,
    );
    p.series.forEach((s, j) => {
      const pts = s.points.filter((q) => Number.isFinite(q[1])).map((q) =>
        `${sx(q[0]).toFixed(1)},${sy(q[1]).toFixed(1)}`
      );
      if (pts.length) {
        out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts.join(" ")}"/>`);
      }
      out.push(
        `<text x="${W - M.r - 6}" y="${top + 14 + 13 * j}" text-anchor="end" fill="${s.color}">${
          esc(s.name)
        }</text>`,
      );
    });
  });
  const bottom = M.t + panels.length * (PH + M.b) - M.b;
  for (let i = 0; i <= 5; i++) {
    const x = x0 + ((x1 - x0) * i) / 5;
    out.push(`<text x="${sx(x)}" y="${bottom + 14}" text-anchor="middle">${Math.round(x)}</text>`);
  }
  out.push(`<text x="${W / 2}" y="${bottom + 27}" text-anchor="middle">step</text>`, `</svg>`);
  return out.join("\n");
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3);
}

function esc(s: string): string {
  return s.replace(/[<>&]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;" }[c]!));
}
