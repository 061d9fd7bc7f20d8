// The SMART App Launch (standalone): discovery, the authorization code with PKCE S256,
// the state checked, the tokens kept in sessionStorage (never localStorage: they end with
// the tab), refreshed with the refresh token, and logout. Every FHIR call goes through
// fhirFetch, which adds the token and refreshes it once when it has run out.

const SESSION = 'samlad.session';
const PENDING = 'samlad.pending';

/** The gateway's FHIR base URL: the app is served at {base}/app/, the API at {base}/fhir. */
export const fhirBase = new URL('../fhir', location.href).href;

/** The redirect URI: the app's own address, without query or fragment. */
export const redirectUri = new URL('./', location.href).href;

let config = null;
let discovery = null;

export async function loadConfig() {
  if (config === null) {
    const answer = await fetch('config.json', { headers: { Accept: 'application/json' } });
    if (!answer.ok) throw new Error('Appens inställningar kunde inte läsas.');
    config = await answer.json();
  }
  return config;
}

export async function discover() {
  if (discovery === null) {
    const answer = await fetch(`${fhirBase}/.well-known/smart-configuration`, {
      headers: { Accept: 'application/json' },
    });
    if (!answer.ok) throw new Error('Inloggningen kunde inte hittas.');
    discovery = await answer.json();
    if (!discovery.authorization_endpoint || !discovery.token_endpoint) {
      throw new Error('Inloggningen saknar sina adresser.');
    }
    if (!(discovery.code_challenge_methods_supported || []).includes('S256')) {
      throw new Error('Inloggningen stöder inte PKCE (S256).');
    }
  }
  return discovery;
}

function base64url(bytes) {
  let text = '';
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

function randomString(length) {
  return base64url(crypto.getRandomValues(new Uint8Array(length)));
}

async function s256(verifier) {
  return base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
}

/** Go to the authorization server's login page. */
export async function login() {
  const [settings, smart] = await Promise.all([loadConfig(), discover()]);
  const verifier = randomString(48);
  const state = randomString(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const url = new URL(smart.authorization_endpoint);
  const params = {
    response_type: 'code',
    client_id: settings.clientId,
    redirect_uri: redirectUri,
    scope: settings.scope,
    state,
    aud: fhirBase,
    code_challenge: await s256(verifier),
    code_challenge_method: 'S256',
  };
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  location.assign(url.href);
}

async function tokenRequest(fields) {
  const smart = await discover();
  const answer = await fetch(smart.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams(fields),
  });
  if (!answer.ok) throw new Error('Inloggningen misslyckades. Logga in igen.');
  const token = await answer.json();
  return {
    accessToken: token.access_token,
    refreshToken: token.refresh_token || null,
    expiresAt: Date.now() + 1000 * (token.expires_in || 300),
    patient: token.patient || null,
    scope: token.scope || '',
  };
}

function save(session) {
  sessionStorage.setItem(SESSION, JSON.stringify(session));
}

/** The session of this tab, or null. */
export function currentSession() {
  const kept = sessionStorage.getItem(SESSION);
  return kept ? JSON.parse(kept) : null;
}

/**
 * Back from the login with ?code=…&state=…: check the state against the one this tab
 * sent, exchange the code, and take the code out of the address bar. Returns the session,
 * or null when the address carries no answer. Throws when the answer is not this tab's.
 */
export async function completeLogin() {
  const query = new URLSearchParams(location.search);
  if (!query.has('code') && !query.has('error')) return null;
  history.replaceState(null, '', redirectUri + location.hash);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  if (pending === null || query.get('state') !== pending.state) {
    throw new Error('Svaret från inloggningen hörde inte till den här inloggningen. Logga in igen.');
  }
  if (query.has('error')) throw new Error('Inloggningen avbröts.');
  const settings = await loadConfig();
  const session = await tokenRequest({
    grant_type: 'authorization_code',
    code: query.get('code'),
    redirect_uri: redirectUri,
    client_id: settings.clientId,
    code_verifier: pending.verifier,
  });
  save(session);
  return session;
}

async function refresh(session) {
  if (!session.refreshToken) throw new Error('Inloggningen har gått ut. Logga in igen.');
  const settings = await loadConfig();
  const renewed = await tokenRequest({
    grant_type: 'refresh_token',
    refresh_token: session.refreshToken,
    client_id: settings.clientId,
  });
  const next = { ...session, ...renewed, patient: renewed.patient || session.patient };
  save(next);
  return next;
}

export function logout() {
  sessionStorage.removeItem(SESSION);
  sessionStorage.removeItem(PENDING);
}

/** An error the gateway answered with: its status and the OperationOutcome's text. */
export class FhirError extends Error {
  constructor(status, outcome) {
    const issue = (outcome && outcome.issue && outcome.issue[0]) || {};
    super(issue.diagnostics || `Fel ${status}`);
    this.status = status;
    this.code = issue.code || null;
  }
}

/** A FHIR request with the session's token; refreshed once when it has run out. */
export async function fhirFetch(path, options = {}) {
  let session = currentSession();
  if (session === null) throw new FhirError(401, null);
  if (session.expiresAt - Date.now() < 30_000 && session.refreshToken) {
    session = await refresh(session);
  }
  const send = (token) =>
    fetch(fhirBase + path, {
      ...options,
      headers: { Accept: 'application/fhir+json', ...options.headers, Authorization: `Bearer ${token}` },
    });
  let answer = await send(session.accessToken);
  if (answer.status === 401 && session.refreshToken) {
    session = await refresh(session);
    answer = await send(session.accessToken);
  }
  if (!answer.ok) {
    let outcome = null;
    try {
      outcome = await answer.json();
    } catch {
      outcome = null;
    }
    throw new FhirError(answer.status, outcome);
  }
  return answer;
}

/** fhirFetch, the answer read as JSON. */
export async function fhirJson(path, options = {}) {
  return (await fhirFetch(path, options)).json();
}
