// The app's shell: log in (SMART standalone launch), then the citizen's views (the
// overview, consents and blocks, the access log, notices) or the clinician's (find a patient).
// A token response with a patient context is a citizen's; without one, a clinician's.
// A citizen who may act for others (a proxy, a legal representative) picks whose record
// (GET /Patient lists them, their own first); another's record shows its overview only.

import { showAccessLog, showChoices } from './choices.js';
import { showClinician } from './clinician.js';
import { el } from './dom.js';
import { showNotices } from './notices.js';
import { showOverview } from './overview.js';
import { showOwnData } from './own.js';
import { printButton, printedLine, showSummary } from './summary.js';
import { completeLogin, currentSession, fhirJson, loadConfig, login, logout } from './smart.js';

const main = document.getElementById('innehall');
const menu = document.getElementById('meny');
const account = document.getElementById('konto');

const CITIZEN_VIEWS = [
  { id: 'oversikt', title: 'Min översikt' },
  { id: 'sammanfattning', title: 'Sammanfattning' },
  { id: 'egna', title: 'Egna mätningar och symtom' },
  { id: 'samtycken', title: 'Samtycken och spärrar' },
  { id: 'logg', title: 'Vem har läst' },
  { id: 'meddelanden', title: 'Meddelanden' },
];

let knownIds = new Set();

function startView(title) {
  main.replaceChildren(el('h1', { id: 'rubrik', tabindex: '-1' }, title));
  document.title = `${title} – Samlad`;
  return main;
}

function showError(error) {
  main.append(el('p', { class: 'warn', role: 'alert' }, error.message || String(error)));
}

function rememberIds(record, config) {
  knownIds = new Set();
  for (const resource of record.resources) {
    for (const tag of (resource.meta && resource.meta.tag) || []) {
      if (tag.system === config.systems.careProvider || tag.system === config.systems.careUnit) {
        knownIds.add(tag.code);
      }
    }
  }
}

async function citizenView(id, session, config) {
  for (const button of menu.querySelectorAll('button')) {
    if (button.dataset.view === id) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  const view = CITIZEN_VIEWS.find((v) => v.id === id);
  startView(view.title);
  main.focus();
  try {
    if (id === 'oversikt') {
      main.append(printedLine(), printButton());
      rememberIds(await showOverview(main, session.patient, config), config);
    } else if (id === 'sammanfattning') await showSummary(main, session.patient, config, knownIds);
    else if (id === 'egna') showOwnData(main, session.patient, config);
    else if (id === 'samtycken') await showChoices(main, session.patient, config, knownIds);
    else if (id === 'meddelanden') await showNotices(main, session.patient);
    else await showAccessLog(main, session.patient, config);
  } catch (error) {
    main.querySelector('[aria-busy]')?.remove();
    showError(error);
  }
}

function showAccount(role) {
  account.replaceChildren(
    el('span', {}, role === 'citizen' ? 'Inloggad som invånare' : 'Inloggad som vårdpersonal'),
    ' ',
    el('button', {
      type: 'button',
      onclick: () => {
        logout();
        location.assign(location.pathname);
      },
    }, 'Logga ut'),
  );
}

/** The citizen's own Patient and those of the people they may act for ([] if unknown). */
async function whoseRecords() {
  try {
    const bundle = await fhirJson('/Patient');
    return (bundle.entry || []).map((e) => e.resource).filter((r) => r && r.resourceType === 'Patient');
  } catch {
    return [];
  }
}

function nameOf(patient) {
  const name = (patient.name || [])[0] || {};
  return [...(name.given || []), name.family].filter(Boolean).join(' ') || 'Namn saknas';
}

/** The citizen's menu; with others to act for, a choice of whose record (theirs first). */
function showCitizen(session, config, people) {
  const own = people.length ? people[0].id : session.patient;
  const views = session.patient === own ? CITIZEN_VIEWS : CITIZEN_VIEWS.slice(0, 1);
  menu.replaceChildren(
    el('ul', {}, views.map((v) =>
      el('li', {}, el('button', { type: 'button', 'data-view': v.id, onclick: () => citizenView(v.id, session, config) }, v.title)),
    )),
  );
  if (people.length > 1) {
    const picker = el(
      'select',
      {
        id: 'vems-journal',
        onchange: (event) => showCitizen({ ...session, patient: event.target.value }, config, people),
      },
      people.map((p, i) =>
        el('option', { value: p.id, selected: p.id === session.patient }, i === 0 ? `Min egen (${nameOf(p)})` : `${nameOf(p)} (som ombud)`),
      ),
    );
    menu.append(el('p', {}, el('label', { for: 'vems-journal' }, 'Vems journal'), picker));
  }
  menu.hidden = false;
  citizenView('oversikt', session, config);
}

function showLogin(message) {
  menu.hidden = true;
  account.replaceChildren();
  startView('Samlad');
  main.append(
    el('p', {}, 'Din samlade journal från alla regioner och vårdgivare, och för vårdpersonal patientens översikt med samtycke.'),
    message ? el('p', { class: 'warn', role: 'alert' }, message) : null,
    el('button', { type: 'button', class: 'primary', onclick: () => login().catch((e) => showError(e)) }, 'Logga in'),
  );
}

async function start() {
  let session;
  try {
    session = await completeLogin();
    if (session !== null) performance.mark('samlad-login');
    session = session || currentSession();
  } catch (error) {
    showLogin(error.message);
    return;
  }
  if (session === null) {
    showLogin();
    return;
  }
  let config;
  try {
    config = await loadConfig();
  } catch (error) {
    showLogin(error.message);
    return;
  }
  if (session.patient) {
    showAccount('citizen');
    const people = await whoseRecords();
    showCitizen(session, config, people);
  } else {
    showAccount('clinician');
    menu.hidden = true;
    startView('Patientöversikt');
    showClinician(main, config);
  }
}

start();
