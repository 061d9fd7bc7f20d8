// Lab analyses over time, across regions: one analysis whether a lab coded it NPU or LOINC
// (the gateway adds the mapped coding, so one of them is shared), plotted with uPlot (one
// series per source, the reference range as two dashed lines) and always with a table of
// the same values beside it, for screen readers and for reading exact numbers.

import { el, formatDate, table } from './dom.js';
import { conceptText } from './categories.js';
import { sourceOf } from './record.js';

/** The analysis key of a lab result: its LOINC code, else its NPU code, else its text. */
export function analysisKey(observation, config) {
  const codings = (observation.code && observation.code.coding) || [];
  for (const system of [config.systems.loinc, config.systems.npu]) {
    const coding = codings.find((c) => c.system === system && c.code);
    if (coding) return `${system}|${coding.code}`;
  }
  return `text|${conceptText(observation.code)}`;
}

/** Lab results grouped by analysis: [{ key, name, unit, results }], results oldest first. */
export function groupAnalyses(observations, config) {
  const groups = new Map();
  for (const observation of observations) {
    if (!observation.valueQuantity || typeof observation.valueQuantity.value !== 'number') continue;
    const key = analysisKey(observation, config);
    if (!groups.has(key)) {
      groups.set(key, { key, name: conceptText(observation.code), unit: '', results: [] });
    }
    const group = groups.get(key);
    group.unit = group.unit || observation.valueQuantity.unit || '';
    group.results.push(observation);
  }
  const when = (o) => Date.parse(o.effectiveDateTime || o.issued || '') || 0;
  for (const group of groups.values()) group.results.sort((a, b) => when(a) - when(b));
  return [...groups.values()].sort((a, b) => a.name.localeCompare(b.name, 'sv'));
}

function range(observation) {
  const found = (observation.referenceRange || [])[0];
  if (!found) return { low: null, high: null };
  return {
    low: found.low && typeof found.low.value === 'number' ? found.low.value : null,
    high: found.high && typeof found.high.value === 'number' ? found.high.value : null,
  };
}

function rangeText(observation) {
  const { low, high } = range(observation);
  if (low === null && high === null) return '';
  if (low === null) return `< ${high}`;
  if (high === null) return `> ${low}`;
  return `${low}–${high}`;
}

// Colours with at least 3:1 contrast against white (WCAG 1.4.11), told apart also by the
// point shapes' size and the legend's names.
const COLOURS = ['#1f5fa8', '#a1401a', '#2d7a2d', '#7a2d7a', '#5c5c00', '#00666b'];

function chartData(group, sourceIds) {
  const times = [...new Set(group.results.map((o) => Date.parse(o.effectiveDateTime || o.issued) / 1000))]
    .filter((t) => !Number.isNaN(t))
    .sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const series = sourceIds.map(() => times.map(() => null));
  const low = times.map(() => null);
  const high = times.map(() => null);
  for (const observation of group.results) {
    const i = index.get(Date.parse(observation.effectiveDateTime || observation.issued) / 1000);
    if (i === undefined) continue;
    series[sourceIds.indexOf(observation._source)][i] = observation.valueQuantity.value;
    const r = range(observation);
    low[i] = r.low;
    high[i] = r.high;
  }
  return [times, ...series, low, high];
}

function drawChart(container, group, sourceNames) {
  const sourceIds = [...new Set(group.results.map((o) => o._source))];
  const data = chartData(group, sourceIds);
  const width = Math.max(280, Math.min(container.clientWidth || 640, 900));
  const options = {
    width,
    height: 280,
    scales: { x: { time: true } },
    series: [
      { label: 'Datum' },
      ...sourceIds.map((id, i) => ({
        label: sourceNames.get(id) || id,
        stroke: COLOURS[i % COLOURS.length],
        width: 2,
        spanGaps: true,
        points: { show: true, size: 7 },
      })),
      { label: 'Referens, nedre', stroke: '#555', dash: [6, 4], spanGaps: true, points: { show: false } },
      { label: 'Referens, övre', stroke: '#555', dash: [6, 4], spanGaps: true, points: { show: false } },
    ],
    axes: [{}, { label: group.unit }],
  };
  if (typeof window.uPlot !== 'function') return;
  // eslint-disable-next-line no-new
  new window.uPlot(options, data, container);
}

/** The trend of one analysis: heading, chart (hidden from screen readers) and table. */
export function trendPanel(group, sourceNames) {
  const chart = el('div', { class: 'chart', 'aria-hidden': 'true' });
  const rows = group.results.map((o) => [
    formatDate(o.effectiveDateTime || o.issued),
    `${o.valueQuantity.value} ${o.valueQuantity.unit || ''}`.trim(),
    rangeText(o),
    sourceNames.get(o._source) || o._source || '',
  ]);
  const panel = el(
    'section',
    { class: 'trend', 'aria-labelledby': 'trend-rubrik', tabindex: '-1' },
    el('h3', { id: 'trend-rubrik' }, `Trend: ${group.name}`),
    el('p', {}, 'Diagrammet visar värdena över tid per region; de streckade linjerna är referensintervallet. Samma värden finns i tabellen.'),
    chart,
    table(`${group.name} över tid`, ['Datum', 'Värde', 'Referensintervall', 'Källa'], rows),
  );
  requestAnimationFrame(() => drawChart(chart, group, sourceNames));
  return panel;
}

/** The lab section: one row per analysis with its latest value and a trend button. */
export function labSection(observations, config, sourceNames) {
  for (const o of observations) o._source = sourceOf(o, config);
  const groups = groupAnalyses(observations, config);
  const holder = el('div', { class: 'trend-holder' });
  const rows = groups.map((group) => {
    const latest = group.results[group.results.length - 1];
    const sources = [...new Set(group.results.map((o) => sourceNames.get(o._source) || o._source))];
    const open = el(
      'button',
      {
        type: 'button',
        class: 'link',
        onclick: () => {
          holder.replaceChildren(trendPanel(group, sourceNames));
          holder.firstChild.focus();
        },
      },
      `Visa trend`,
      el('span', { class: 'visually-hidden' }, ` för ${group.name}`),
    );
    return [
      group.name,
      `${latest.valueQuantity.value} ${latest.valueQuantity.unit || ''}`.trim(),
      rangeText(latest),
      formatDate(latest.effectiveDateTime || latest.issued),
      `${group.results.length} (${sources.join(', ')})`,
      open,
    ];
  });
  return [
    table('Analyser, senaste värde', ['Analys', 'Senaste värde', 'Referensintervall', 'Datum', 'Antal svar (källor)', 'Trend'], rows),
    holder,
  ];
}
