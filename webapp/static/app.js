// The app's shell: log in (SMART standalone launch), then the citizen's views (the
// overview, consents and blocks, the access log) or the clinician's (find a patient).
// A token response with a patient context is a citizen's; without one, a clinician's.

import { showAccessLog, showChoices } from './choices.js';
import { showClinician } from './clinician.js';
import { el } from './dom.js';
import { showOverview } from './overview.js';
import { showOwnData } from './own.js';
import { completeLogin, currentSession, loadConfig, login, logout } from './smart.js';

const main = document.getElementById('innehall');
const menu = document.getElementById('meny');
const account = document.getElementById('konto');

const CITIZEN_VIEWS = [
  { id: 'oversikt', title: 'Min översikt' },
  { id: 'egna', title: 'Egna mätningar och symtom' },
  { id: 'samtycken', title: 'Samtycken och spärrar' },
  { id: 'logg', title: 'Vem har läst' },
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
    if (id === 'oversikt') rememberIds(await showOverview(main, session.patient, config), config);
    else if (id === 'egna') showOwnData(main, session.patient, config);
    else if (id === 'samtycken') await showChoices(main, session.patient, config, knownIds);
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
    menu.replaceChildren(
      el('ul', {}, CITIZEN_VIEWS.map((v) =>
        el('li', {}, el('button', { type: 'button', 'data-view': v.id, onclick: () => citizenView(v.id, session, config) }, v.title)),
      )),
    );
    menu.hidden = false;
    await citizenView('oversikt', session, config);
  } else {
    showAccount('clinician');
    menu.hidden = true;
    startView('Patientöversikt');
    showClinician(main, config);
  }
}

start();
