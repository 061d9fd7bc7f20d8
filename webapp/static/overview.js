// The overview of one person's record: the sources' status in plain words, progress per
// source while the record arrives, every category with where each item came from and
// when, a timeline, and the lab trends.

import { CATEGORIES, sortIntoCategories } from './categories.js';
import { announce, el, formatDate, formatWhen, table } from './dom.js';
import { labSection } from './labs.js';
import { loadRecord, sourceOf, tagOf } from './record.js';

const TIMELINE_LENGTH = 40;

/** One source's status as a sentence ("Region Syd svarade inte; visar uppgifter från 08:14"). */
export function statusSentence(source) {
  const name = source.name;
  switch (source.status) {
    case 'ok':
      return `${name} svarade (${source.count ?? 0} uppgifter).`;
    case 'no-data':
      return `${name} svarade: inga uppgifter om personen.`;
    case 'cached':
      return `${name} tillfrågades inte nu; visar uppgifter från ${formatWhen(source.lastSync)}.`;
    case 'revalidating':
      return `${name} tillfrågas nu i bakgrunden; visar uppgifter från ${formatWhen(source.lastSync)}.`;
    case 'stale':
      return `${name} svarade inte; visar uppgifter från ${formatWhen(source.lastSync)}.`;
    case 'not-asked':
      return `${name} tillfrågades inte: har inga uppgifter om personen enligt indexet.`;
    case 'timeout':
      return `${name} svarade inte i tid; inga uppgifter därifrån visas.`;
    default:
      return `${name} svarade inte; inga uppgifter därifrån visas.`;
  }
}

/** What the record's categories (the gateway's codes) are called in a sentence. */
const SHARED_NAMES = {
  encounters: 'vårdkontakter',
  notes: 'journalanteckningar',
  diagnoses: 'diagnoser',
  medications: 'läkemedel',
  vaccinations: 'vaccinationer',
  alerts: 'uppmärksamhetsinformation',
  'lab-results': 'labbsvar',
  reports: 'svar och utlåtanden',
  'vital-signs': 'mätningar',
  assessments: 'bedömningar',
  referrals: 'remisser',
  procedures: 'åtgärder',
  'care-plans': 'vårdplaner',
  appointments: 'tidsbokningar',
};

function fromWhen(day) {
  return day.endsWith('-01-01') ? day.slice(0, 4) : formatDate(day);
}

function listed(words, last = 'eller') {
  return words.length > 1 ? `${words.slice(0, -1).join(', ')} ${last} ${words.at(-1)}` : words[0];
}

/** What a source shares as a sentence ("Region Syd delar journalanteckningar från 2005,
 * övrigt från 2001; inga labbsvar."), or null when its status does not say. */
export function coverageSentence(source) {
  const coverage = source.coverage;
  if (!coverage) return null;
  const parts = coverage.shares
    .filter((s) => s.since && s.since !== coverage.since)
    .map((s) => `${SHARED_NAMES[s.category] || s.category} från ${fromWhen(s.since)}`);
  if (coverage.since) parts.push(`${parts.length ? 'övrigt' : 'uppgifter'} från ${fromWhen(coverage.since)}`);
  if (!parts.length) parts.push(coverage.withholds.length ? 'övriga kategorier' : 'alla kategorier');
  const withheld = coverage.withholds.map((c) => SHARED_NAMES[c] || c);
  return `${source.name} delar ${parts.join(', ')}${withheld.length ? `; inga ${listed(withheld)}` : ''}.`;
}

// What each source shares and since when, one sentence a source (none when no status says).
function coverageList(sources) {
  const sentences = sources.map(coverageSentence).filter(Boolean);
  if (!sentences.length) return null;
  return [
    el('h3', { id: 'kallor-delar' }, 'Vad källorna delar'),
    el('ul', { class: 'coverage', 'aria-labelledby': 'kallor-delar' }, sentences.map((t) => el('li', {}, t))),
  ];
}

function statusSection(sources) {
  const troubled = sources.filter((s) => ['stale', 'timeout', 'failed'].includes(s.status));
  return el(
    'section',
    { class: troubled.length ? 'status warn' : 'status', 'aria-labelledby': 'kallor' },
    el('h2', { id: 'kallor' }, 'Källor'),
    troubled.length
      ? el('p', { class: 'strong' }, 'Alla källor svarade inte: uppgifter kan saknas eller vara gamla.')
      : null,
    el('ul', {}, sources.map((s) => el('li', { 'data-status': s.status }, statusSentence(s)))),
    coverageList(sources),
  );
}

/** The progress list shown while the record arrives. */
export function progressSection() {
  const list = el('ul', { id: 'framsteg-lista' });
  const section = el(
    'section',
    { class: 'status', 'aria-labelledby': 'framsteg', 'aria-busy': 'true' },
    el('h2', { id: 'framsteg' }, 'Hämtar uppgifter från källorna …'),
    list,
  );
  const update = (counts) => {
    list.replaceChildren(
      ...Object.entries(counts).map(([id, n]) => el('li', {}, `${id}: ${n} uppgifter mottagna`)),
    );
  };
  return { section, update };
}

function origin(resource, config, names) {
  const source = sourceOf(resource, config);
  const provider = tagOf(resource, config.systems.careProvider);
  const updated = resource.meta && resource.meta.lastUpdated;
  return [
    names.get(source) || source || 'okänd källa',
    provider ? ` (vårdgivare ${provider})` : '',
    updated ? `, uppdaterad ${formatDate(updated)}` : '',
  ].join('');
}

// The sources that do not share a category: "Delas inte av Region Syd."
function notSharedNote(category, sources) {
  const withholding = sources.filter((s) => s.coverage && s.coverage.withholds.includes(category.shared));
  if (!withholding.length) return null;
  return el('p', { class: 'not-shared' }, `Delas inte av ${listed(withholding.map((s) => s.name), 'och')}.`);
}

function categorySection(category, items, config, names, sources) {
  const heading = el('h2', { id: `kat-${category.id}` }, `${category.title} (${items.length})`);
  const body =
    category.id === 'labb'
      ? labSection(items, config, names)
      : items.length
        ? table(
            category.title,
            ['Datum', 'Uppgift', 'Källa'],
            items.map((r) => [formatDate(category.date(r)), category.line(r), origin(r, config, names)]),
          )
        : el('p', {}, 'Inga uppgifter.');
  const note = notSharedNote(category, sources);
  return el('section', { class: 'category', 'aria-labelledby': heading.id }, heading, note, body);
}

function timeline(sorted, config, names) {
  const items = [];
  for (const category of CATEGORIES) {
    if (category.id === 'bokningar-kommande') continue;
    for (const r of sorted.get(category.id)) {
      const date = category.date(r);
      if (date) items.push({ when: Date.parse(date), date, category, resource: r });
    }
  }
  items.sort((a, b) => b.when - a.when);
  const shown = items.slice(0, TIMELINE_LENGTH);
  return el(
    'section',
    { class: 'timeline', 'aria-labelledby': 'tidslinje' },
    el('h2', { id: 'tidslinje' }, 'Tidslinje'),
    el('p', {}, `De ${shown.length} senaste händelserna av ${items.length}.`),
    el(
      'ol',
      {},
      shown.map((item) =>
        el(
          'li',
          {},
          el('time', { datetime: item.date }, formatDate(item.date)),
          ' ',
          el('span', { class: 'kind' }, item.category.title),
          ': ',
          item.category.line(item.resource),
          el('span', { class: 'origin' }, ` – ${origin(item.resource, config, names)}`),
        ),
      ),
    ),
  );
}

/**
 * Load patient `id`'s record into `main` (under its h1): progress first, then the
 * overview. `notes` are nodes put before the categories (the clinician's note on blocks).
 */
export async function showOverview(main, id, config, notes = []) {
  const progress = progressSection();
  main.append(progress.section);
  const record = await loadRecord(id, config, progress.update);
  performance.mark('samlad-record');
  const names = new Map(record.sources.map((s) => [s.id, s.name]));
  const sorted = sortIntoCategories(record.resources, Date.now());
  const contents = el(
    'nav',
    { 'aria-label': 'Kategorier', class: 'contents' },
    el(
      'ul',
      {},
      CATEGORIES.map((c) =>
        el('li', {}, el('a', { href: `#kat-${c.id}` }, `${c.title} (${sorted.get(c.id).length})`)),
      ),
      el('li', {}, el('a', { href: '#tidslinje' }, 'Tidslinje')),
    ),
  );
  progress.section.replaceWith(statusSection(record.sources));
  main.append(
    ...notes,
    contents,
    ...CATEGORIES.map((c) => categorySection(c, sorted.get(c.id), config, names, record.sources)),
    timeline(sorted, config, names),
  );
  performance.mark('samlad-overview');
  announce(`Översikten är klar: ${record.resources.length} uppgifter.`);
  return record;
}
