// A hand-written SVG chart: seconds per profile (groups) and method (bars), log scale,
// because plain TCP on mpls takes ~100x longer than anything on baseline.

import { REPORT_PROFILES } from '../../link/profiles.ts';
import { METHODS } from './matrix.ts';
import type { BenchResult } from './runner.ts';
import { speedUp } from './figures.ts';

const COLORS: Record<string, string> = {
  'tcp-cubic': '#d62728',
  'tcp-bbr': '#ff7f0e',
  'tcp-64k': '#8c564b',
  kcptun: '#9467bd',
  longhaul: '#2ca02c',
};

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function label(seconds: number): string {
  return seconds >= 100 ? seconds.toFixed(0) : seconds >= 10 ? seconds.toFixed(1) : seconds.toFixed(2);
}

export function renderChart(results: BenchResult[], opts: { title: string; subtitle?: string }): string {
  const profiles = [
    ...REPORT_PROFILES.map((p) => p.name).filter((p) => results.some((r) => r.profile === p)),
    ...[...new Set(results.map((r) => r.profile))].filter((p) => !REPORT_PROFILES.some((q) => q.name === p)),
  ];
  const methods = METHODS.filter((m) => results.some((r) => r.method === m));
  const shown = results.filter((r) => !r.skipped && r.seconds > 0 && (r.capped || (!r.error && r.verified)));
  const W = 960,
    H = 480,
    left = 70,
    right = 20,
    top = 80,
    bottom = 60;
  const plotW = W - left - right,
    plotH = H - top - bottom;
  const values = shown.map((r) => r.seconds);
  const lo = Math.floor(Math.log10(Math.max(1e-3, Math.min(...values, 1))));
  const hi = Math.ceil(Math.log10(Math.max(...values, 10)));
  const y = (s: number) => top + plotH - ((Math.log10(Math.max(s, 10 ** lo)) - lo) / (hi - lo)) * plotH;
  const groupW = plotW / Math.max(1, profiles.length);
  const barW = Math.min(34, (groupW * 0.8) / Math.max(1, methods.length));
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">`,
  );
  out.push(
    '<defs><pattern id="capped" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#fff" fill-opacity="0.6"/></pattern></defs>',
  );
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${left}" y="24" font-size="16" font-weight="bold">${esc(opts.title)}</text>`);
  if (opts.subtitle) out.push(`<text x="${left}" y="42" font-size="11" fill="#555">${esc(opts.subtitle)}</text>`);
  // Legend.
  methods.forEach((m, i) => {
    const x = left + i * 130;
    out.push(`<rect x="${x}" y="54" width="12" height="12" fill="${COLORS[m]}"/><text x="${x + 16}" y="64" font-size="12">${m}</text>`);
  });
  out.push(
    `<text x="${W - right}" y="64" font-size="11" text-anchor="end" fill="#555">hatched: hit the time cap (true time is longer)</text>`,
  );
  // Grid: decades, with 2x and 5x minor lines.
  for (let d = lo; d <= hi; d++) {
    const s = 10 ** d;
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(s)}" y2="${y(s)}" stroke="#bbb"/>`);
    out.push(`<text x="${left - 6}" y="${y(s) + 4}" font-size="11" text-anchor="end">${s >= 1 ? s : s.toFixed(-d)} s</text>`);
    if (d < hi) for (const k of [2, 5]) out.push(`<line x1="${left}" x2="${W - right}" y1="${y(k * s)}" y2="${y(k * s)}" stroke="#eee"/>`);
  }
  profiles.forEach((p, gi) => {
    const gx = left + gi * groupW + (groupW - barW * methods.length) / 2;
    out.push(`<text x="${left + gi * groupW + groupW / 2}" y="${H - bottom + 20}" font-size="13" text-anchor="middle">${esc(p)}</text>`);
    const gain = speedUp(
      results.find((x) => x.profile === p && x.method === 'tcp-cubic'),
      results.find((x) => x.profile === p && x.method === 'longhaul'),
    );
    if (gain)
      out.push(
        `<text x="${left + gi * groupW + groupW / 2}" y="${H - bottom + 36}" font-size="11" text-anchor="middle" fill="#2ca02c">longhaul ${esc(gain)} vs cubic</text>`,
      );
    methods.forEach((m, mi) => {
      const r = results.find((x) => x.profile === p && x.method === m);
      const x = gx + mi * barW;
      if (!r || !shown.includes(r)) {
        const why = !r ? '' : r.skipped ? 'skip' : 'fail';
        if (why) out.push(`<text x="${x + barW / 2}" y="${top + plotH - 4}" font-size="9" text-anchor="middle" fill="#999">${why}</text>`);
        return;
      }
      const yTop = y(r.seconds);
      const h = top + plotH - yTop;
      out.push(
        `<rect x="${x + 1}" y="${yTop}" width="${barW - 2}" height="${Math.max(1, h)}" fill="${COLORS[m]}"><title>${esc(`${p} ${m}: ${label(r.seconds)} s${r.capped ? ' (capped)' : ''}, ${r.goodput_mbps.toFixed(0)} Mbit/s`)}</title></rect>`,
      );
      if (r.capped) out.push(`<rect x="${x + 1}" y="${yTop}" width="${barW - 2}" height="${Math.max(1, h)}" fill="url(#capped)"/>`);
      out.push(
        `<text x="${x + barW / 2}" y="${yTop - 3}" font-size="9" text-anchor="middle">${r.capped ? '>' : ''}${label(r.seconds)}</text>`,
      );
    });
  });
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${left}" x2="${W - right}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(
    `<text x="16" y="${top + plotH / 2}" font-size="12" transform="rotate(-90 16 ${top + plotH / 2})" text-anchor="middle">seconds (log scale)</text>`,
  );
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
