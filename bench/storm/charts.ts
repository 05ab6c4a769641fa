/** Plain SVG charts for the storm benchmark: no library, just polylines and text. */

export interface Series {
  readonly label: string;
  readonly colour: string;
  readonly points: readonly (readonly [number, number])[];
  readonly dashed?: boolean;
  /** Drawn as steps (a count that jumps), not straight segments. */
  readonly steps?: boolean;
}

export interface Marker {
  readonly x: number;
  readonly label: string;
  readonly colour: string;
}

export interface Panel {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly markers?: readonly Marker[];
}

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

const tickText = (v: number) => (Math.abs(v) >= 1000 ? v.toLocaleString('en-US', { maximumFractionDigits: 0 }) : Number(v.toFixed(1)).toString());

function panelSvg(panel: Panel, ox: number, oy: number, width: number, height: number): string {
  const pad = { left: 58, right: 16, top: 34, bottom: 44 };
  const allX = [...panel.series.flatMap((s) => s.points.map(([x]) => x)), ...(panel.markers ?? []).map((m) => m.x)];
  const allY = panel.series.flatMap((s) => s.points.map(([, y]) => y));
  const maxX = niceMax(Math.max(0, ...allX) * 1.02);
  const maxY = niceMax(Math.max(0, ...allY));
  const x = (v: number) => ox + pad.left + (v / maxX) * (width - pad.left - pad.right);
  const y = (v: number) => oy + height - pad.bottom - (v / maxY) * (height - pad.top - pad.bottom);
  const parts: string[] = [];
  parts.push(`<text x="${ox + width / 2}" y="${oy + 18}" text-anchor="middle" font-size="13" font-weight="bold">${escape(panel.title)}</text>`);
  parts.push(`<line x1="${x(0)}" y1="${y(0)}" x2="${x(maxX)}" y2="${y(0)}" stroke="#333"/>`);
  parts.push(`<line x1="${x(0)}" y1="${y(0)}" x2="${x(0)}" y2="${y(maxY)}" stroke="#333"/>`);
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(`<text x="${x(f * maxX).toFixed(1)}" y="${y(0) + 15}" font-size="10" text-anchor="middle">${tickText(f * maxX)}</text>`);
    parts.push(`<text x="${x(0) - 5}" y="${(y(f * maxY) + 3).toFixed(1)}" font-size="10" text-anchor="end">${tickText(f * maxY)}</text>`);
    if (f > 0) parts.push(`<line x1="${x(0)}" y1="${y(f * maxY).toFixed(1)}" x2="${x(maxX)}" y2="${y(f * maxY).toFixed(1)}" stroke="#eee"/>`);
  }
  parts.push(`<text x="${x(maxX / 2)}" y="${oy + height - 8}" font-size="11" text-anchor="middle">${escape(panel.xLabel)}</text>`);
  parts.push(`<text x="${ox + 12}" y="${y(maxY / 2)}" font-size="11" text-anchor="middle" transform="rotate(-90 ${ox + 12} ${y(maxY / 2)})">${escape(panel.yLabel)}</text>`);
  for (const s of panel.series) {
    const points: (readonly [number, number])[] = [];
    for (const [i, point] of s.points.entries()) {
      const previous = s.points[i - 1];
      if (s.steps && previous) points.push([point[0], previous[1]]);
      points.push(point);
    }
    const text = points.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${s.colour}" stroke-width="${s.dashed ? 1.5 : 2}"${s.dashed ? ' stroke-dasharray="5 4"' : ''} points="${text}"/>`);
  }
  for (const m of panel.markers ?? []) {
    parts.push(`<line x1="${x(m.x).toFixed(1)}" y1="${y(0)}" x2="${x(m.x).toFixed(1)}" y2="${y(maxY)}" stroke="${m.colour}" stroke-dasharray="2 3"/>`);
  }
  const legend = [...panel.series.map((s) => ({ label: s.label, colour: s.colour, dashed: s.dashed === true })), ...(panel.markers ?? []).map((m) => ({ label: m.label, colour: m.colour, dashed: true }))];
  legend.forEach((entry, i) => {
    const ly = oy + pad.top + 10 + i * 14;
    const lx = x(0) + 10;
    parts.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 18}" y2="${ly - 4}" stroke="${entry.colour}" stroke-width="2"${entry.dashed ? ' stroke-dasharray="4 3"' : ''}/>`);
    parts.push(`<text x="${lx + 24}" y="${ly}" font-size="10">${escape(entry.label)}</text>`);
  });
  return parts.join('\n');
}

/** Panels in a grid, `columns` wide. */
export function chartSvg(title: string, panels: readonly Panel[], columns = 2, panelWidth = 520, panelHeight = 300): string {
  const rows = Math.ceil(panels.length / columns);
  const width = Math.min(columns, panels.length) * panelWidth;
  const height = rows * panelHeight + 30;
  const body = panels.map((p, i) => panelSvg(p, (i % columns) * panelWidth, 30 + Math.floor(i / columns) * panelHeight, panelWidth, panelHeight));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="15">${escape(title)}</text>`,
    ...body,
    `</svg>`,
    '',
  ].join('\n');
}
