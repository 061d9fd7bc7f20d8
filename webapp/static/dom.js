// Small helpers to build the page: elements from plain values (text is always text, never
// HTML), dates in Swedish, Stockholm time.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const ZONE = 'Europe/Stockholm';
const dateFormat = new Intl.DateTimeFormat('sv-SE', { timeZone: ZONE, dateStyle: 'medium' });
const timeFormat = new Intl.DateTimeFormat('sv-SE', {
  timeZone: ZONE,
  dateStyle: 'medium',
  timeStyle: 'short',
});
const clockFormat = new Intl.DateTimeFormat('sv-SE', { timeZone: ZONE, timeStyle: 'short' });
const dayFormat = new Intl.DateTimeFormat('sv-SE', { timeZone: ZONE, dateStyle: 'short' });

/** A FHIR date or dateTime as Swedish text ('' when absent). */
export function formatDate(value) {
  if (!value) return '';
  const when = new Date(value);
  if (Number.isNaN(when.getTime())) return value;
  return value.length > 10 ? timeFormat.format(when) : dateFormat.format(when);
}

/** "08:14" when `value` is today, else "3 dec. 2026 08:14". */
export function formatWhen(value, now = new Date()) {
  if (!value) return '';
  const when = new Date(value);
  if (Number.isNaN(when.getTime())) return value;
  return dayFormat.format(when) === dayFormat.format(now)
    ? clockFormat.format(when)
    : timeFormat.format(when);
}

/** A table with a caption, column headers and rows of cells (text or nodes). */
export function table(caption, headers, rows, options = {}) {
  return el(
    'table',
    { class: options.class || 'data' },
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
    el(
      'tbody',
      {},
      rows.map((cells) => el('tr', {}, cells.map((cell) => el('td', {}, cell)))),
    ),
  );
}

/** Tell a screen reader what just happened (the polite live region). */
export function announce(text) {
  const region = document.getElementById('meddelande');
  region.textContent = '';
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}
