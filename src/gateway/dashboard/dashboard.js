// Longhaul's live dashboard: polls /status once a second and draws the last minutes with uPlot.
// Plain JavaScript for the browser, no build step; served by the control interface with uPlot
// from node_modules (src/gateway/dashboard.ts). Read-only: it only GETs /status.
// biome-ignore lint/suspicious/noRedundantUseStrict: a classic script (index.html loads it without type=module), so not redundant
'use strict';
(() => {
  const POLL_MS = 1000;
  // The charts' window; the history lives in this page only (it starts when the page opens).
  const WINDOW_S = 300;
  const COLORS = ['#1f6feb', '#d9480f', '#2f9e44', '#ae3ec9', '#e8590c', '#0c8599', '#5c940d', '#c2255c'];

  // Read by the browser test (test/gateway/dashboard-browser.test.ts) and handy in devtools.
  const state = { samples: 0, charts: new Map() };
  window.longhaulDashboard = state;

  // ---- formatting ----
  const bits = (v) => {
    if (v == null || !Number.isFinite(v)) return '–';
    const units = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
    let i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) {
      v /= 1000;
      i++;
    }
    return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
  };
  const ms = (v) => (v == null || !Number.isFinite(v) ? '–' : `${v.toFixed(v >= 10 ? 1 : 2)} ms`);
  const pct = (v) => (v == null || !Number.isFinite(v) ? '–' : `${(v * 100).toFixed(v >= 0.1 ? 1 : 2)}%`);
  const ratio = (v) => (v == null || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}x`);
  const count = (v) => (v == null ? '–' : String(Math.round(v)));
  const bytes = (v) => {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  };
  const duration = (s) =>
    s >= 86400
      ? `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`
      : s >= 3600
        ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
        : `${Math.floor(s / 60)} min ${s % 60} s`;

  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  };

  // ---- charts: one uPlot per figure group, fed [times, ...series] ----
  // Every figure is >= 0: the y axis starts at 0 and reaches at least `floor`, so a flat zero
  // line stays a line at the bottom instead of an axis zoomed into rounding noise.
  function makeChart(id, container, title, series, format, floor, integer = false) {
    const data = [[], ...series.map(() => [])];
    const opts = {
      title,
      width: Math.max(300, container.clientWidth),
      height: 180,
      legend: { live: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(floor, (max || 0) * 1.1)] } },
      series: [{}, ...series.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 1.5 }))],
      axes: [
        {},
        {
          size: 80,
          values: (_u, vals) => vals.map(format),
          ...(integer ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] } : {}),
        },
      ],
    };
    const u = new uPlot(opts, data, container);
    const chart = { u, data, container };
    state.charts.set(id, chart);
    return chart;
  }

  function push(chart, t, values) {
    chart.data[0].push(t);
    for (const [i, v] of values.entries()) chart.data[i + 1].push(v);
    while (chart.data[0].length > 0 && chart.data[0][0] < t - WINDOW_S) for (const col of chart.data) col.shift();
    chart.u.setData(chart.data);
  }

  window.addEventListener('resize', () => {
    for (const c of state.charts.values()) c.u.setSize({ width: Math.max(300, c.container.clientWidth), height: 180 });
  });

  // ---- per peer ----
  const peers = new Map();

  // The peer's associations summed (normally one; two briefly while one replaces another).
  function peerTotals(assocs) {
    const sum = (k) => assocs.reduce((a, x) => a + (x[k] || 0), 0);
    const live = assocs.find((a) => a.connected) || assocs[0];
    return {
      live,
      send: sum('sendRateBps'),
      receive: sum('receiveRateBps'),
      rawSend: sum('rawSendRateBps'),
      rawReceive: sum('rawReceiveRateBps'),
      bandwidth: Math.max(0, ...assocs.map((a) => a.bandwidthBps || 0)),
      rtt: live ? live.rttMs : null,
      minRtt: live ? live.minRttMs : null,
      packetsSent: sum('packetsSent'),
      packetsLost: sum('packetsLost'),
      streamSent: sum('streamBytesSent'),
      streamRetx: sum('streamBytesRetransmitted'),
      streams: sum('activeStreams'),
    };
  }

  function peerCard(name) {
    let p = peers.get(name);
    if (p) return p;
    const badge = el('span', { class: 'badge idle' }, 'idle');
    const sub = el('span', { class: 'sub' });
    const figures = el('div', { class: 'figures' });
    const charts = el('div', { class: 'charts' });
    const card = el('section', { class: 'card peer', 'data-peer': name }, el('h2', {}, `peer ${name}`, badge, sub), figures, charts);
    document.getElementById('peers').append(card);
    const cell = (key) => {
      const v = el('span', { class: 'v' }, '–');
      figures.append(el('div', {}, el('span', { class: 'k' }, key), v));
      return v;
    };
    const slot = () => {
      const d = el('div', { class: 'chart' });
      charts.append(d);
      return d;
    };
    const id = (k) => `${name}:${k}`;
    p = {
      badge,
      sub,
      v: {
        link: cell('send rate / estimated bandwidth'),
        out: cell('raw -> wire, out'),
        in: cell('wire -> raw, in'),
        rtt: cell('RTT (min)'),
        loss: cell('loss: last second (all)'),
        retx: cell('retransmitted: last second (all)'),
        streams: cell('open streams'),
      },
      link: makeChart(id('link'), slot(), 'Link: send rate vs estimated bandwidth', ['send (wire)', 'bandwidth estimate'], bits, 1e3),
      rawWire: makeChart(id('raw-wire'), slot(), 'Raw (TCP side) vs wire', ['raw out', 'wire out', 'raw in', 'wire in'], bits, 1e3),
      ratio: makeChart(id('ratio'), slot(), 'Compression ratio (raw / wire)', ['out', 'in'], ratio, 1),
      rttChart: makeChart(id('rtt'), slot(), 'Round-trip time', ['smoothed RTT', 'min RTT'], ms, 1),
      lossChart: makeChart(id('loss'), slot(), 'Loss and retransmissions (per second)', ['packets lost', 'bytes retransmitted'], pct, 0.01),
      prev: null,
    };
    peers.set(name, p);
    return p;
  }

  function updatePeer(t, peer, assocs) {
    const p = peerCard(peer.name);
    const x = peerTotals(assocs);
    if (!peer.reachable) {
      p.badge.className = 'badge bad';
      p.badge.textContent = `UNREACHABLE for ${peer.unreachableForSec} s`;
    } else if (x.live?.connected) {
      p.badge.className = 'badge';
      p.badge.textContent = 'associated';
    } else {
      p.badge.className = 'badge idle';
      p.badge.textContent = 'no association';
    }
    p.sub.textContent = x.live
      ? `${x.live.role === 'client' ? 'opened by us' : 'opened by the peer'}, ${x.live.remote}, restarts detected ${peer.restartsDetected}, outages ${peer.outages}`
      : `restarts detected ${peer.restartsDetected}, outages ${peer.outages}`;
    // Per-second loss and retransmission from the counters' growth; a new association restarts them.
    const prev = p.prev;
    const grew = prev && x.packetsSent >= prev.packetsSent && x.streamSent >= prev.streamSent;
    const dSent = grew ? x.packetsSent - prev.packetsSent : 0;
    const dStream = grew ? x.streamSent - prev.streamSent : 0;
    const lossNow = dSent > 0 ? (x.packetsLost - prev.packetsLost) / dSent : 0;
    const retxNow = dStream > 0 ? (x.streamRetx - prev.streamRetx) / dStream : 0;
    p.prev = x;
    const outRatio = x.send > 0 && x.rawSend > 0 ? x.rawSend / x.send : null;
    const inRatio = x.receive > 0 && x.rawReceive > 0 ? x.rawReceive / x.receive : null;
    const use = x.bandwidth > 0 ? ` (${pct(x.send / x.bandwidth)})` : '';
    p.v.link.textContent = `${bits(x.send)} / ${bits(x.bandwidth)}${use}`;
    p.v.out.textContent = `${bits(x.rawSend)} -> ${bits(x.send)}, ${ratio(outRatio)}`;
    p.v.in.textContent = `${bits(x.receive)} -> ${bits(x.rawReceive)}, ${ratio(inRatio)}`;
    p.v.rtt.textContent = `${ms(x.rtt)} (${ms(x.minRtt)})`;
    p.v.loss.textContent = `${pct(lossNow)} (${pct(x.packetsSent > 0 ? x.packetsLost / x.packetsSent : 0)})`;
    p.v.retx.textContent = `${pct(retxNow)} (${pct(x.streamSent > 0 ? x.streamRetx / x.streamSent : 0)})`;
    p.v.streams.textContent = count(x.streams);
    push(p.link, t, [x.send, x.bandwidth]);
    push(p.rawWire, t, [x.rawSend, x.send, x.rawReceive, x.receive]);
    push(p.ratio, t, [outRatio, inRatio]);
    push(p.rttChart, t, [x.rtt, x.minRtt]);
    push(p.lossChart, t, [lossNow, retxNow]);
  }

  // ---- tunnels: a table and one chart of open connections (rebuilt if the set changes) ----
  let connChart = null;
  let connKeys = '';
  function updateTunnels(t, s) {
    const body = document.querySelector('#tunnels tbody');
    body.replaceChildren(
      ...s.tunnels.map((x) =>
        el(
          'tr',
          {},
          el('td', {}, x.name),
          el('td', {}, x.listen),
          el('td', {}, x.peer),
          el('td', {}, x.target),
          el('td', {}, count(x.active)),
          el('td', {}, count(x.total)),
          el('td', {}, count(x.failed)),
        ),
      ),
    );
    const labels = [...s.tunnels.map((x) => `tunnel ${x.name}`), 'from peers (far side)'];
    const values = [...s.tunnels.map((x) => x.active), s.inbound.active];
    if (labels.join('\n') !== connKeys) {
      const box = document.getElementById('chart-connections');
      if (connChart) connChart.u.destroy();
      box.replaceChildren();
      connChart = makeChart('connections', box, 'Open connections', labels, count, 1, true);
      connKeys = labels.join('\n');
    }
    push(connChart, t, values);
  }

  function update(s) {
    const t = Date.now() / 1000;
    document.getElementById('gw-name').textContent = s.name;
    document.getElementById('summary').textContent =
      `WAN ${s.wan} · up ${duration(s.uptimeSec)} · connections ${s.connections.active}/${s.connections.max} · ${s.security} · compression ${s.codec.encode.setting} · memory ${bytes(s.memory.rssBytes)}`;
    const names = new Set(s.peers.map((p) => p.name));
    for (const a of s.associations) names.add(a.peer);
    for (const name of names) {
      const peer = s.peers.find((p) => p.name === name) || { name, reachable: true, unreachableForSec: 0, restartsDetected: 0, outages: 0 };
      updatePeer(
        t,
        peer,
        s.associations.filter((a) => a.peer === name),
      );
    }
    updateTunnels(t, s);
    state.samples++;
  }

  const stateEl = document.getElementById('state');
  async function tick() {
    try {
      const res = await fetch('status', { cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      update(await res.json());
      stateEl.className = 'state ok';
      stateEl.textContent = `live · ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      stateEl.className = 'state bad';
      stateEl.textContent = `no answer from the gateway (${err.message})`;
    } finally {
      setTimeout(tick, POLL_MS);
    }
  }
  tick();
})();
