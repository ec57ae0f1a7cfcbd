// packaging/grafana/longhaul.json against a live gateway: every metric a panel or variable
// queries must be in /metrics (with a sample, after a transfer), every label a selector matches
// on must be one the metric carries, and the panels must cover what operators look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startPair, startVerifyTarget, verifiedExchange } from './helpers.ts';

const DASHBOARD = new URL('../../packaging/grafana/longhaul.json', import.meta.url);
// Labels Prometheus adds when it scrapes, not the gateway.
const SCRAPE_LABELS = new Set(['instance', 'job']);

interface Panel { type: string; id: number; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: Array<{ expr: string; datasource: { uid: string } }> }
interface Dashboard { panels: Panel[]; templating: { list: Array<{ name: string; query: unknown; definition?: string }> } }

/** Every PromQL expression in the dashboard: panel targets and variable queries. */
function queries(d: Dashboard): string[] {
  const out: string[] = [];
  for (const p of d.panels) for (const t of p.targets ?? []) out.push(t.expr);
  for (const v of d.templating.list) {
    if (typeof v.query === 'object' && v.query !== null && 'query' in v.query) out.push(String((v.query as { query: unknown }).query));
  }
  return out;
}

/** metric name -> the label names of its samples, from Prometheus text. */
function parseExposition(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s/.exec(line);
    if (!m) continue;
    const labels = out.get(m[1]!) ?? new Set<string>();
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(l[1]!);
    out.set(m[1]!, labels);
  }
  return out;
}

/** What is wrong with the queries against the exposed metrics (empty: nothing). */
function problems(exprs: string[], exposed: Map<string, Set<string>>): string[] {
  const out: string[] = [];
  for (const expr of exprs) {
    for (const m of expr.matchAll(/\b(longhaul_[a-z0-9_]+)(\{([^}]*)\})?/g)) {
      const name = m[1]!;
      const labels = exposed.get(name);
      if (!labels) {
        out.push(`${name}: not in /metrics (in ${expr})`);
        continue;
      }
      for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
        if (!SCRAPE_LABELS.has(l[1]!) && !labels.has(l[1]!)) out.push(`${name}: has no label "${l[1]}" (in ${expr})`);
      }
    }
  }
  return out;
}

test('the Grafana dashboard is well formed and covers throughput, ratio, RTT, loss, connections, restarts and outages', () => {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of d.panels) {
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title}: fits the 24-column grid`);
    if (p.type === 'row') continue;
    assert.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
    for (const t of p.targets!) assert.equal(t.datasource.uid, '${datasource}', `${p.title}: uses the dashboard's datasource variable`);
  }
  const names = new Set(queries(d).flatMap((e) => [...e.matchAll(/\blonghaul_[a-z0-9_]+/g)].map((m) => m[0])));
  for (const needed of [
    'longhaul_association_raw_bytes_out_total', 'longhaul_association_wire_bytes_out_total', // throughput raw vs wire, ratio
    'longhaul_association_send_rate_bps', 'longhaul_association_bandwidth_bps',
    'longhaul_association_rtt_seconds', 'longhaul_association_packets_lost_total', 'longhaul_association_stream_bytes_retransmitted_total',
    'longhaul_tunnel_connections', 'longhaul_peer_restarts_detected_total', 'longhaul_peer_reassociations_total',
    'longhaul_peer_outages_total', 'longhaul_peer_reachable',
  ]) assert.ok(names.has(needed), `the dashboard queries ${needed}`);
});

test('every metric the Grafana dashboard queries is in /metrics of a live gateway, with the labels it selects on', { timeout: 60_000 }, async () => {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
  const target = await startVerifyTarget();
  const pair = await startPair({ target: `127.0.0.1:${target.port}`, allow: ['127.0.0.1/32'], aConfig: { control: '127.0.0.1:0' } });
  try {
    // Association, tunnel and codec series exist once a connection has crossed.
    const x = await verifiedExchange(pair.port, 2 * 1024 * 1024, 1024 * 1024);
    assert.ok(x.uploadOk && x.downloadOk);
    const res = await fetch(`http://127.0.0.1:${pair.a.control!.address.port}/metrics`);
    assert.equal(res.status, 200);
    const exposed = parseExposition(await res.text());
    const exprs = queries(d);
    const queried = new Set(exprs.flatMap((e) => [...e.matchAll(/\blonghaul_[a-z0-9_]+/g)].map((m) => m[0])));
    assert.ok(queried.size >= 30, `${queried.size} metrics queried`);
    assert.deepEqual(problems(exprs, exposed), []);
    // The check itself catches a missing metric and a missing label.
    assert.equal(problems(['rate(longhaul_no_such_metric[1m])', 'longhaul_connections{peer="b"}'], exposed).length, 2);
  } finally {
    await pair.stop();
    await target.close();
  }
});
