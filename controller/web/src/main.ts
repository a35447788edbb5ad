// bpfleet dashboard: hash routes (#/fleet, #/device/<id>, #/probe/<name>, #/stacks, #/deploy),
// a login form when the session cookie is missing or expired.
import './style.css';
import { getJson, postJson, setUnauthorizedHandler } from './api.js';
import { h, type Page } from './dom.js';
import { deployPage } from './pages/deploy.js';
import { devicePage } from './pages/device.js';
import { fleetPage } from './pages/fleet.js';
import { probePage } from './pages/probe.js';
import { stacksPage } from './pages/stacks.js';



const PAGES: Record<string, { title: string; page: Page; nav?: boolean }> = {
  fleet: { title: 'Fleet', page: fleetPage, nav: true },
  device: { title: 'Device', page: devicePage },
  probe: { title: 'Probes', page: probePage, nav: true },
  stacks: { title: 'Stacks', page: stacksPage, nav: true },
  deploy: { title: 'Deploy & smoke', page: deployPage, nav: true },
};

const app = document.getElementById('app')!;
let cleanup: (() => void) | void;
let loggedIn = false;

function showLogin(message = ''): void {
  cleanup?.();
  cleanup = undefined;
  loggedIn = false;
  const input = h('input', { type: 'password', name: 'token', id: 'token', autocomplete: 'current-password', placeholder: 'admin token', required: true });
  const err = h('p', { class: 'error', id: 'login-error' }, message);
  const form = h('form', { class: 'login', id: 'login' },
    h('h1', {}, 'bpfleet'),
    h('p', {}, 'Log in with the controller\'s admin token (', h('code', {}, 'adminToken'), ' in ', h('code', {}, '~/.config/bpfleet/controller.json'),
      ' on the controller).'),
    input, h('button', { type: 'submit' }, 'Log in'), err);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    err.textContent = '';
    postJson('/web/login', { token: input.value }).then(() => { loggedIn = true; input.value = ''; route(); })
      .catch((x: unknown) => { err.textContent = x instanceof Error ? x.message : String(x); });
  });
  app.replaceChildren(form);
  input.focus();
}

setUnauthorizedHandler(() => { if (loggedIn) showLogin('Your session ended: log in again.'); });

function nav(active: string): HTMLElement {
  const links = Object.entries(PAGES).filter(([, p]) => p.nav).map(([k, p]) =>
    h('a', { href: `#/${k}`, class: k === active ? 'active' : '' }, p.title));
  const logout = h('button', { class: 'link', id: 'logout' }, 'Log out');
  logout.addEventListener('click', () => { void postJson('/web/logout', {}).finally(() => showLogin()); });
  const live = h('span', { id: 'live-state', class: 'live-state', title: 'live updates (Server-Sent Events)' }, '●');
  return h('nav', {}, h('strong', {}, 'bpfleet'), ...links, h('span', { class: 'spacer' }), live, logout);
}

function route(): void {
  if (!loggedIn) return;
  cleanup?.();
  const [pathPart = '', queryPart = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [name = 'fleet', ...args] = pathPart.split('/').filter(Boolean).map(decodeURIComponent);
  const entry = PAGES[name] ?? PAGES['fleet']!;
  const main = h('main', { id: `page-${name in PAGES ? name : 'fleet'}` });
  app.replaceChildren(nav(name in PAGES ? (name === 'device' ? 'fleet' : name) : 'fleet'), main);
  document.title = `bpfleet: ${entry.title}`;
  try {
    cleanup = entry.page(main, args, new URLSearchParams(queryPart));
  } catch (err) {
    main.append(h('p', { class: 'error' }, String(err)));
  }
}

window.addEventListener('hashchange', route);
getJson('/web/session').then(() => { loggedIn = true; route(); }).catch(() => showLogin());
