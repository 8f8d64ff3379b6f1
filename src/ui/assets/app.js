// Warren dashboard: plain JavaScript, no framework. Reads /ui/api/*, follows the event stream
// (/ui/api/stream, server-sent events) and redraws the page that is open when an event
// concerns it. Every value from the server goes through textContent, never innerHTML.
'use strict';

const state = {
  lastEventId: 0,
  events: [],          // newest last, at most MAX_EVENTS
  route: null,         // {page, name}
  service: null,       // the open service's id
  // The open service's samples for the charts (see loadSamples, loadHistory): {t, weights:
  // {rev: weight}, errors: {rev: pct}, p99: {rev: ms}}.
  samples: [],
  samplesFor: '',
  reloadTimer: null,
  pollTimer: null,
  // The session (GET /ui/api/session): {login: whether the manager asks for one, role:
  // 'admin' or 'read-only', expires}. Actions are for the admin role only.
  session: null,
  loggedOut: false,
};
const MAX_EVENTS = 300;
const MAX_SAMPLES = 1800;  // an hour of the manager's samples (every 2 s)
const COLORS = ['#1f6feb', '#d4731b', '#1a7f37', '#8250df', '#c62828', '#0598bc'];

// ---- small helpers ----------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const svgNS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function short(name, prefix) {
  return (name || '').replace(prefix, '').toLowerCase().replace(/_/g, '-');
}
function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return isNaN(d) ? ts : d.toLocaleString();
}
function ago(ts) {
  if (!ts) return '';
  const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
  if (s < 60) return s + 's ago';
  if (s < 3600) return Math.round(s / 60) + 'm ago';
  return Math.round(s / 3600) + 'h ago';
}
function table(headers, rows, empty) {
  if (!rows.length) return el('p', {class: 'muted', text: empty || 'None.'});
  return el('div', {class: 'table-wrap'},
    el('table', {},
      el('thead', {}, el('tr', {}, headers.map((h) => {
        const [text, cls] = Array.isArray(h) ? h : [h, null];
        return el('th', {scope: 'col', class: cls, text});
      }))),
      el('tbody', {}, rows)));
}
function stateClass(s) {
  if (['running', 'healthy', 'succeeded', 'ready', 'passed'].includes(s)) return 'ok';
  if (['failed', 'unhealthy', 'rolled-back', 'rolling-back', 'down', 'rejected', 'orphaned']
      .includes(s)) return 'bad';
  if (['paused', 'pending', 'starting', 'progressing', 'waiting', 'in-progress', 'not-passed']
      .includes(s)) {
    return 'warn';
  }
  return 'muted';
}
function pill(s) { return el('span', {class: 'pill ' + stateClass(s), text: s || '-'}); }

// A 401 (no session, or it expired) shows the login page.
class LoginRequired extends Error {}
async function answer(r) {
  const body = await r.json().catch(() => ({error: r.statusText}));
  if (r.status === 401) {
    // Once: a second refusal must not wipe what the user is typing.
    if (!state.loggedOut) showLogin(body.error || 'Log in first.');
    throw new LoginRequired(body.error || r.statusText);
  }
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
async function getJson(path) {
  return answer(await fetch(path, {headers: {'Accept': 'application/json'}}));
}
async function post(path, body) {
  return answer(await fetch(path, {
    method: 'POST',
    headers: {'X-Warren-Dashboard': '1', 'Accept': 'application/json',
              'Content-Type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  }));
}
async function postAction(service, action) {
  return post('/ui/api/services/' + encodeURIComponent(service) + '/' + action);
}
function isAdmin() { return !!state.session && state.session.role === 'admin'; }
let toastTimer = null;
function toast(text, isError) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.className = 'toast' + (isError ? ' error' : '');
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}
function confirmDialog(text) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), {once: true});
    d.returnValue = '';
    d.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

// ---- routing ------------------------------------------------------------------------------
function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'services' && parts[1]) return {page: 'service', name: parts[1]};
  if (['nodes', 'events'].includes(parts[0])) return {page: parts[0]};
  return {page: 'services'};
}
function render() {
  state.route = parseRoute();
  for (const a of document.querySelectorAll('nav a')) {
    const cur = a.dataset.page === state.route.page ||
        (a.dataset.page === 'services' && state.route.page === 'service');
    a.classList.toggle('current', cur);
    if (cur) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  clearInterval(state.pollTimer);
  state.pollTimer = null;
  let history = null;
  if (state.route.page !== 'service' || state.samplesFor !== state.route.name) {
    state.samplesFor = state.route.page === 'service' ? state.route.name : '';
    state.samples = state.samplesFor ? loadSamples(state.samplesFor) : [];
    if (state.samplesFor) history = loadHistory(state.samplesFor);
  }
  reload();
  // The charts again once the manager's samples are in.
  if (history) history.then(scheduleReload);
}
async function reload() {
  if (state.loggedOut) return;
  const route = state.route;
  const main = document.getElementById('main');
  try {
    let view;
    if (route.page === 'services') view = servicesView(await getJson('/ui/api/services'));
    else if (route.page === 'service') {
      const data = await getJson('/ui/api/services/' + encodeURIComponent(route.name));
      view = serviceView(data);
    } else if (route.page === 'nodes') view = nodesView(await getJson('/ui/api/nodes'));
    else view = eventsView();
    if (route !== state.route) return;  // the user moved on meanwhile
    // A redraw must not take the keyboard focus away from the button the user is on.
    const focused = document.activeElement && main.contains(document.activeElement) ?
        document.activeElement.id : '';
    main.replaceChildren(view);
    if (focused) {
      const again = document.getElementById(focused);
      if (again) again.focus();
    }
  } catch (e) {
    if (route !== state.route || e instanceof LoginRequired) return;
    main.replaceChildren(el('h1', {text: 'Error'}), el('p', {class: 'bad', text: e.message}));
  }
}
// Several events arrive together during a rollout: one redraw for them.
function scheduleReload() {
  if (state.reloadTimer) return;
  state.reloadTimer = setTimeout(() => { state.reloadTimer = null; reload(); }, 150);
}

// ---- pages --------------------------------------------------------------------------------
function servicesView(data) {
  const rows = data.services.map((s) => {
    const d = s.deployment;
    const active = d && ['progressing', 'paused', 'rolling-back', 'pending'].includes(d.phase);
    return el('tr', {'data-service': s.name},
      el('td', {}, el('a', {href: '#/services/' + encodeURIComponent(s.name), text: s.name})),
      el('td', {class: 'num'}, s.mode === 'global' ? 'global' :
         `${s.tasks.running}/${s.replicas}`),
      el('td', {class: 'num'}, el('span', {class: s.tasks.healthy === s.tasks.desired ? 'ok' : 'warn',
                                           text: `${s.tasks.healthy}/${s.tasks.desired}`})),
      el('td', {class: 'num', text: String(s.revision)}),
      el('td', {}, s.ports.map((p) => (p.published ? `${p.hostIp ? p.hostIp + ':' : ''}${p.published}→` : '') +
                                   p.target).join(', ')),
      el('td', {class: 'hide-narrow'}, d ? [pill(active ? d.phase : d.phase), ' ', d.strategy,
                                           active && d.strategy === 'canary' ? ` ${d.weight}%` : '']
                                         : '-'));
  });
  return el('div', {},
    el('h1', {text: 'Services'}),
    table(['Name', 'Replicas', 'Healthy', 'Revision', 'Ports', ['Last deployment', 'hide-narrow']],
          rows, 'No services yet: warren service create NAME --command CMD'));
}

function nodesView(data) {
  const rows = data.nodes.map((n) => el('tr', {},
    el('td', {text: n.name}),
    el('td', {}, pill(short(n.state, 'NODE_STATE_'))),
    el('td', {text: n.role}),
    el('td', {class: 'hide-narrow', text: n.runtime}),
    el('td', {class: 'hide-narrow', text: n.addressRange || '-'}),
    el('td', {text: ago(n.lastHeartbeat)}),
    el('td', {class: 'muted', text: n.message || ''})));
  return el('div', {}, el('h1', {text: 'Nodes'}),
    table(['Name', 'State', 'Role', ['Runtime', 'hide-narrow'], ['Addresses', 'hide-narrow'],
           'Heartbeat', 'Message'], rows, 'No nodes.'));
}

function eventRows(events) {
  return events.slice().reverse().map((e) => el('tr', {},
    el('td', {class: 'num', text: new Date(e.time).toLocaleTimeString()}),
    el('td', {text: e.kind}),
    el('td', {text: e.objectName}),
    el('td', {text: e.action}),
    el('td', {class: 'muted', text: e.message})));
}
function eventsView() {
  return el('div', {}, el('h1', {text: 'Events'}),
    table(['Time', 'Kind', 'Object', 'Action', 'Message'], eventRows(state.events),
          'No events yet.'));
}

const ACTIVE = ['DEPLOYMENT_PHASE_PENDING', 'DEPLOYMENT_PHASE_PROGRESSING',
                'DEPLOYMENT_PHASE_PAUSED'];

// The samples are kept in the tab's session storage, so a reload or a visit to another page
// does not empty the charts; an hour old, they are dropped.
const SAMPLE_TTL_MS = 3600 * 1000;
function samplesKey(name) { return 'warren-samples/' + name; }
function loadSamples(name) {
  try {
    const kept = JSON.parse(sessionStorage.getItem(samplesKey(name)) || '[]');
    const since = Date.now() - SAMPLE_TTL_MS;
    return Array.isArray(kept) ? kept.filter((s) => s && s.t > since && s.weights) : [];
  } catch (e) {
    return [];
  }
}
function saveSamples(name) {
  try {
    sessionStorage.setItem(samplesKey(name), JSON.stringify(state.samples));
  } catch (e) { /* storage full or disabled: the charts start empty next time */ }
}

// The manager's samples of this service (taken while it had a deployment, the last hour),
// so the charts show what happened before the page was opened. The tab's own samples from
// before the manager's first one (the manager starts sampling at a deployment's first event,
// the tab saw the service before it) and after its last one surround them.
async function loadHistory(name) {
  try {
    const h = await getJson('/ui/api/services/' + encodeURIComponent(name) + '/history');
    if (state.samplesFor !== name || !Array.isArray(h.samples) || !h.samples.length) return;
    const first = h.samples[0].t;
    const last = h.samples[h.samples.length - 1].t;
    state.samples = state.samples.filter((s) => s.t < first)
        .concat(h.samples, state.samples.filter((s) => s.t > last))
        .slice(-MAX_SAMPLES);
    saveSamples(name);
  } catch (e) { /* the tab's own samples only */ }
}

function recordSample(data) {
  const s = {t: Date.now(), weights: {}, errors: {}, p99: {}};
  const ep = data.endpoints;
  if (ep && ep.revisions) {
    for (const r of ep.revisions) {
      if (r.preview) continue;
      s.weights[r.revision] = r.weight;
      s.errors[r.revision] = r.recentErrorRate || 0;
      s.p99[r.revision] = ((r.recent && r.recent.latencyP99Seconds) || 0) * 1000;
    }
  }
  state.samples.push(s);
  if (state.samples.length > MAX_SAMPLES) state.samples.shift();
  saveSamples(data.service.spec.name);
}

// A line chart of one series per revision over the samples (the manager's, then the tab's).
function chart(title, key, unit, maxFixed) {
  const W = 480, H = 160, L = 36, B = 18, T = 8;
  const revs = [...new Set(state.samples.flatMap((s) => Object.keys(s[key])))].sort(
      (a, b) => Number(a) - Number(b));
  const box = svg('svg', {class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
                          'aria-label': title, preserveAspectRatio: 'none'});
  let max = maxFixed || 0;
  if (!maxFixed) {
    for (const s of state.samples) for (const v of Object.values(s[key])) max = Math.max(max, v);
    max = max > 0 ? max * 1.2 : 1;
  }
  const t0 = state.samples.length ? state.samples[0].t : 0;
  const t1 = state.samples.length ? Math.max(state.samples[state.samples.length - 1].t, t0 + 1) : 1;
  const x = (t) => L + (W - L - 4) * (t - t0) / (t1 - t0);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  for (const f of [0, 0.5, 1]) {
    box.append(svg('line', {x1: L, x2: W - 4, y1: y(max * f), y2: y(max * f), stroke: '#e3e7eb'}));
    const label = svg('text', {x: 2, y: y(max * f) + 3});
    label.textContent = (max * f).toFixed(max * f >= 10 || f === 0 ? 0 : 2) + unit;
    box.append(label);
  }
  if (state.samples.length) {
    const fmt = (t) => new Date(t).toLocaleTimeString();
    const from = svg('text', {x: L, y: H - 4});
    from.textContent = fmt(t0);
    const to = svg('text', {x: W - 4, y: H - 4, 'text-anchor': 'end'});
    to.textContent = fmt(t1);
    box.append(from, to);
  }
  const legend = el('div', {class: 'legend'});
  revs.forEach((rev, i) => {
    const color = COLORS[i % COLORS.length];
    // Weights change in steps and a revision without routes has none: drawn as steps from 0.
    // Rates and latencies are drawn where measured.
    const steps = key === 'weights';
    const pts = [];
    let prev = null;
    for (const s of state.samples) {
      if (!(rev in s[key]) && !steps) continue;
      const v = rev in s[key] ? s[key][rev] : 0;
      if (steps && prev !== null) pts.push(`${x(s.t).toFixed(1)},${y(prev).toFixed(1)}`);
      pts.push(`${x(s.t).toFixed(1)},${y(v).toFixed(1)}`);
      prev = v;
    }
    if (pts.length) pts.push(`${W - 4},${pts[pts.length - 1].split(',')[1]}`);
    box.append(svg('polyline', {points: pts.join(' '), fill: 'none', stroke: color,
                                'stroke-width': 2, 'data-revision': rev}));
    const sw = el('span', {class: 'swatch'});
    sw.style.background = color;
    const last = state.samples[state.samples.length - 1][key][rev];
    legend.append(el('span', {}, sw, `rev ${rev}: `,
                     el('b', {'data-series': `${key}-${rev}`,
                              text: last === undefined ? '-' :
                                  String(Math.round(last * 10) / 10) + unit})));
  });
  return el('figure', {}, el('figcaption', {text: title}), box, legend);
}

function deploymentSection(data, d) {
  const phase = short(d.phase, 'DEPLOYMENT_PHASE_');
  const active = ACTIVE.includes(d.phase);
  const canary = d.strategy === 'canary';
  const steps = (d.config && d.config.canarySteps) || [];
  const facts = el('dl', {class: 'facts'},
    el('dt', {text: 'Strategy'}), el('dd', {id: 'dep-strategy', text: d.strategy}),
    el('dt', {text: 'Phase'}), el('dd', {}, el('span', {id: 'dep-phase'}, pill(phase)),
                                          d.pausedByUser ? ' (paused by a user)' : ''),
    el('dt', {text: 'Revisions'}), el('dd', {text: `${d.fromRevision} → ${d.toRevision}` +
                                                    (d.rollback ? ' (rollback)' : '')}),
    canary && el('dt', {text: 'Step'}),
    canary && el('dd', {id: 'dep-step', text: steps.length ?
        `${d.step + 1} of ${steps.length} (${steps.join('%, ')}%)` : String(d.step)}),
    canary && el('dt', {text: 'Canary weight'}),
    canary && el('dd', {}, el('b', {id: 'dep-weight', text: `${d.weight}%`})),
    el('dt', {text: 'Tasks'}), el('dd', {text: `${d.updated} updated, ${d.available} available of ${d.total}`}),
    el('dt', {text: 'Started'}), el('dd', {text: when(d.createdAt)}),
    d.finishedAt && el('dt', {text: 'Finished'}), d.finishedAt && el('dd', {text: when(d.finishedAt)}),
    d.reason && el('dt', {text: 'Reason'}), d.reason && el('dd', {id: 'dep-reason', text: d.reason}));
  const analysis = (d.analysis || []).map((a) => el('tr', {},
    el('td', {text: a.check}),
    el('td', {class: 'num', text: Number(a.value).toFixed(3)}),
    el('td', {class: 'num', text: Number(a.threshold).toFixed(3)}),
    // Results without a state (some checks do not set it) say only whether they passed.
    el('td', {}, pill(a.state && a.state !== 'ANALYSIS_STATE_UNSPECIFIED' ?
                        short(a.state, 'ANALYSIS_STATE_') : (a.passed ? 'passed' : 'not-passed'))),
    el('td', {class: 'muted', text: a.detail})));
  const name = data.service.spec.name;
  // A read-only session sees the buttons disabled (the manager refuses its actions anyway).
  const action = (label, act, enabled, text, danger) => el('button', {
    type: 'button', id: 'action-' + act, disabled: !enabled || !isAdmin(),
    class: danger ? 'danger' : null,
    title: isAdmin() ? null : 'Actions need the admin role (this session is read-only)',
    onclick: async () => {
      if (!await confirmDialog(text)) return;
      try {
        await postAction(name, act);
        toast(`${label}: done`);
        scheduleReload();
      } catch (e) {
        toast(`${label} failed: ${e.message}`, true);
      }
    }}, label);
  const progressive = canary || d.strategy === 'blue-green';
  return el('section', {class: 'card', id: 'deployment', 'aria-labelledby': 'dep-title'},
    el('h2', {id: 'dep-title', text: 'Deployment'}),
    facts,
    el('div', {class: 'charts'},
       chart('Traffic weight per revision (%)', 'weights', '%', 100),
       chart('Error rate per revision, last minute (%)', 'errors', '%'),
       chart('p99 latency per revision, last minute (ms)', 'p99', ' ms')),
    el('h2', {text: 'Analysis'}),
    table(['Check', 'Value', 'Threshold', 'Result', 'Detail'], analysis,
          'No analysis results yet.'),
    el('div', {class: 'actions'},
       action('Promote', 'promote', active && progressive,
              `Promote the ${d.strategy} of ${name} to its next step now?`),
       action('Pause', 'pause', active && d.phase !== 'DEPLOYMENT_PHASE_PAUSED',
              `Pause the deployment of ${name}?`),
       action('Resume', 'resume', d.phase === 'DEPLOYMENT_PHASE_PAUSED',
              `Resume the deployment of ${name}?`),
       action('Abort', 'abort', active && progressive,
              `Abort the ${d.strategy} of ${name}? Traffic goes back to revision ${d.fromRevision} at once.`, true),
       action('Roll back', 'rollback', true,
              `Roll ${name} back to its previous revision?`, true)));
}

function serviceView(data) {
  const svc = data.service;
  const name = svc.spec.name;
  state.service = svc.id;
  recordSample(data);
  const deps = data.deployments || [];
  const latest = deps[0];
  // While a rollout runs, traffic figures change without events: refresh this one service.
  const running = latest && ACTIVE.includes(latest.phase);
  if (running && !state.pollTimer) {
    state.pollTimer = setInterval(() => { if (!document.hidden) scheduleReload(); }, 3000);
  } else if (!running && state.pollTimer) {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }
  const nodes = data.nodeNames || {};
  const tasks = data.tasks.slice().sort((a, b) =>
      (a.desiredState === b.desiredState ? 0 : a.desiredState === 'TASK_STATE_RUNNING' ? -1 : 1) ||
      a.slot - b.slot || Number(b.revision) - Number(a.revision));
  const taskRows = tasks.map((t) => {
    const st = t.status || {};
    const health = short(st.health && st.health.state, 'HEALTH_STATE_');
    return el('tr', {class: t.desiredState === 'TASK_STATE_RUNNING' ? null : 'muted'},
      el('td', {text: t.id.slice(0, 12)}),
      el('td', {class: 'num', text: String(t.slot)}),
      el('td', {class: 'num', text: String(t.revision)}),
      el('td', {text: nodes[t.nodeId] || t.nodeId || '-'}),
      el('td', {text: t.address ? `${t.address}:${t.port}` : '-'}),
      el('td', {}, pill(short(st.state, 'TASK_STATE_'))),
      el('td', {}, health ? pill(health) : '-'),
      el('td', {class: 'bad', text: st.error || ''}));
  });
  const revRows = data.revisions.slice().reverse().map((r) => el('tr', {},
    el('td', {class: 'num', text: String(r.number)}),
    el('td', {text: r.strategy || '-'}),
    el('td', {}, pill(r.outcome)),
    el('td', {text: r.changeCause || ''}),
    el('td', {text: when(r.createdAt)})));
  const ep = data.endpoints;
  const epRows = ep ? ep.revisions.map((r) => el('tr', {'data-revision': r.revision},
    el('td', {class: 'num', text: String(r.revision) + (r.preview ? ' (preview)' : '')}),
    el('td', {class: 'num weight', text: `${r.weight}%`}),
    el('td', {class: 'num', text: String((r.endpoints || []).filter((e) => e.routed).length) + '/' +
                                   (r.endpoints || []).length}),
    el('td', {class: 'num', text: (r.recent && r.recent.requests) || '0'}),
    el('td', {class: 'num', text: (r.recentErrorRate || 0).toFixed(1) + '%'}),
    el('td', {class: 'num', text: r.recent && r.recent.latencyP99Seconds ?
                                    (r.recent.latencyP99Seconds * 1000).toFixed(1) + ' ms' : '-'}))) : [];
  const ports = (svc.spec.template && svc.spec.template.ports) || [];
  return el('div', {},
    el('h1', {}, 'Service ', el('span', {id: 'service-name', text: name})),
    el('section', {class: 'card'}, el('dl', {class: 'facts'},
      el('dt', {text: 'Revision'}), el('dd', {id: 'service-revision', text: String(svc.revision)}),
      el('dt', {text: 'Replicas'}), el('dd', {text: svc.spec.mode === 'global' ? 'global' :
                                                 String(svc.spec.replicas)}),
      el('dt', {text: 'Command'}), el('dd', {text: [svc.spec.template.image, svc.spec.template.command]
                                                 .filter(Boolean).join(' ')}),
      el('dt', {text: 'Ports'}), el('dd', {text: ports.map((p) =>
          (p.published ? `${p.published}→` : '') + p.target).join(', ') || '-'}),
      el('dt', {text: 'Updated'}), el('dd', {text: when(svc.updatedAt)}))),
    latest ? deploymentSection(data, latest) : el('p', {class: 'muted', text: 'No deployment yet.'}),
    el('h2', {text: 'Traffic per revision'}),
    table(['Revision', 'Weight', 'Routed', 'Requests (1 min)', 'Errors', 'p99'], epRows,
          'No routing yet.'),
    el('h2', {text: 'Recent events'}),
    table(['Time', 'Kind', 'Object', 'Action', 'Message'],
          eventRows(state.events.filter((e) => e.serviceId === svc.id ||
                                               (e.kind === 'service' && e.objectName === name))
                        .slice(-10)),
          'No recent events.'),
    el('h2', {text: 'Tasks'}),
    table(['Task', 'Slot', 'Rev', 'Node', 'Address', 'State', 'Health', 'Last error'], taskRows,
          'No tasks.'),
    el('h2', {text: 'Revisions'}),
    table(['Revision', 'Strategy', 'Outcome', 'Change cause', 'Created'], revRows, 'None.'));
}

// ---- live updates -------------------------------------------------------------------------
function onEvent(e) {
  state.lastEventId = Math.max(state.lastEventId, Number(e.id));
  state.events.push(e);
  if (state.events.length > MAX_EVENTS) state.events.shift();
  const r = state.route;
  if (r.page === 'events' || r.page === 'services' ||
      (r.page === 'nodes' && e.kind === 'node') ||
      (r.page === 'service' && (e.objectName === r.name ||
                                (state.service && e.serviceId === state.service)))) {
    scheduleReload();
  }
}
function connect() {
  const live = document.getElementById('live');
  const source = new EventSource('/ui/api/stream?since=' + state.lastEventId);
  state.source = source;
  source.addEventListener('open', () => { live.textContent = 'live'; live.className = 'live on'; });
  // Each response of the stream ends after its events and the browser opens the next one
  // itself; only a closed source needs a new one.
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      live.textContent = 'disconnected, retrying';
      live.className = 'live off';
      // A refused stream may be an expired session: the login page then, not a retry.
      getJson('/ui/api/session').then((session) => {
        if (session.login && !session.role) showLogin(session.error);
        else setTimeout(connect, 2000);
      }, () => setTimeout(connect, 2000));
    }
  });
  source.addEventListener('warren', (m) => {
    try { onEvent(JSON.parse(m.data)); } catch (err) { /* a malformed event is skipped */ }
  });
}

// ---- login ----------------------------------------------------------------------------------
// The login page: the URL `warren dashboard token` prints carries the token in its fragment
// (#login=TOKEN, never sent to a server by the browser); it can also be pasted here.
function showLogin(reason) {
  state.loggedOut = true;
  if (state.source) state.source.close();
  clearInterval(state.pollTimer);
  state.pollTimer = null;
  document.getElementById('session').replaceChildren();
  const live = document.getElementById('live');
  live.textContent = 'logged out';
  live.className = 'live off';
  const input = el('input', {id: 'login-token', type: 'password', autocomplete: 'off',
                             spellcheck: 'false', required: true, 'aria-describedby': 'login-help'});
  const error = el('p', {id: 'login-error', class: 'bad', role: 'alert', text: reason || ''});
  const form = el('form', {id: 'login-form', class: 'card login', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await login(input.value.trim());
    } catch (e) {
      error.textContent = e.message;
    }
  }},
    el('h1', {text: 'Log in'}),
    el('p', {id: 'login-help'},
       'Create a login token where the admin client bundle is, and open the URL it prints ' +
       '(or paste the token here):'),
    el('pre', {text: 'warren dashboard token [--role read-only] [--ttl 1h]'}),
    el('label', {for: 'login-token', text: 'Token'}), ' ', input, ' ',
    el('button', {type: 'submit', id: 'login-submit', text: 'Log in'}),
    error);
  document.getElementById('main').replaceChildren(form);
  input.focus();
}
async function login(token) {
  const r = await fetch('/ui/api/login', {
    method: 'POST',
    headers: {'X-Warren-Dashboard': '1', 'Accept': 'application/json',
              'Content-Type': 'application/json'},
    body: JSON.stringify({token}),
  });
  const body = await r.json().catch(() => ({error: r.statusText}));
  if (!r.ok) throw new Error(body.error || r.statusText);
  await begin(body);
}
async function logout() {
  await post('/ui/api/logout').catch(() => {});
  showLogin('Logged out.');
}
function showSession() {
  const box = document.getElementById('session');
  if (!state.session || !state.session.login) {
    box.replaceChildren();
    return;
  }
  const until = new Date(Number(state.session.expires));
  box.replaceChildren(
    el('span', {id: 'session-role', class: 'role', title: 'until ' + until.toLocaleString(),
                text: state.session.role}),
    ' ',
    el('button', {type: 'button', id: 'logout', class: 'link', onclick: logout, text: 'Log out'}));
}
// The pages, once there is a session.
async function begin(session) {
  state.session = session;
  state.loggedOut = false;
  showSession();
  try {
    const ev = await getJson('/ui/api/events');
    state.events = ev.events.slice(-MAX_EVENTS);
    state.lastEventId = Number(ev.lastId) || 0;
  } catch (e) {
    if (e instanceof LoginRequired) return;
    toast('Could not read the events: ' + e.message, true);
  }
  render();
  if (!state.source || state.source.readyState === EventSource.CLOSED) connect();
}
// #login=TOKEN: logs in; true when the address had one.
async function loginFromAddress() {
  const m = location.hash.match(/^#login=([A-Za-z0-9_.-]+)$/);
  if (!m) return false;
  // The token leaves the address bar (and the history) at once.
  history.replaceState(null, '', location.pathname + '#/services');
  try {
    await login(m[1]);
  } catch (e) {
    showLogin(e.message);
  }
  return true;
}
async function start() {
  window.addEventListener('hashchange', async () => {
    if (await loginFromAddress()) return;
    if (!state.loggedOut && state.session) render();
  });
  if (await loginFromAddress()) return;
  let session;
  try {
    session = await getJson('/ui/api/session');
  } catch (e) {
    if (!(e instanceof LoginRequired)) toast('Could not read the session: ' + e.message, true);
    return;
  }
  // Not logged in: the reason (none yet, an expired session...) above the form.
  if (session.login && !session.role) showLogin(session.error);
  else await begin(session);
}
start();
