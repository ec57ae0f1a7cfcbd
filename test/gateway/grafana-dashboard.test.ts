// packaging/grafana/longhaul.json against a live gateway: every metric a panel or variable
// queries must parse as PromQL (Prometheus' own grammar, @prometheus-io/lezer-promql), be in
// /metrics (with a sample, after a transfer), match only on labels the metric carries, and the
// panels must cover what operators look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parser } from '@prometheus-io/lezer-promql';
import { startPair, startVerifyTarget, verifiedExchange } from './helpers.ts';

const DASHBOARD = new URL('../../packaging/grafana/longhaul.json', import.meta.url);
// Labels Prometheus adds when it scrapes, not the gateway.
const SCRAPE_LABELS = new Set(['instance', 'job']);

interface Panel {
  type: string;
  id: number;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Array<{ expr: string; datasource: { uid: string } }>;
}
interface Dashboard {
  panels: Panel[];
  templating: { list: Array<{ name: string; query: unknown; definition?: string }> };
}

/** Every PromQL expression in the dashboard: panel targets and variable queries (label_values(SELECTOR, LABEL) -> SELECTOR). */
function queries(d: Dashboard): string[] {
  const out: string[] = [];
  for (const p of d.panels) for (const t of p.targets ?? []) out.push(t.expr);
  for (const v of d.templating.list) {
    if (typeof v.query !== 'object' || v.query === null || !('query' in v.query)) continue;
    const q = String((v.query as { query: unknown }).query);
    const m = /^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$/.exec(q);
    out.push(m ? m[1]! : q);
  }
  return out;
}

interface Selector {
  metric: string;
  labels: string[];
}

/**
 * Parses one query with Prometheus' own PromQL grammar (after Grafana's interval variables are
 * put in): its syntax errors, and each vector selector's metric and matched label names.
 */
function parseQuery(expr: string): { errors: string[]; selectors: Selector[] } {
  const q = expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$__range', '1h');
  const errors: string[] = [];
  const selectors: Selector[] = [];
  parser.parse(q).iterate({
    enter: (n) => {
      if (n.type.isError) errors.push(`syntax error at ${n.from} in ${expr}`);
      if (n.name !== 'VectorSelector') return;
      const id = n.node.getChild('Identifier');
      if (!id) return;
      const labels: string[] = [];
      const matchers = n.node.getChild('LabelMatchers');
      if (matchers) {
        matchers.toTree().iterate({
          enter: (c) => {
            if (c.name === 'LabelName') labels.push(q.slice(matchers.from + c.from, matchers.from + c.to));
          },
        });
      }
      selectors.push({ metric: q.slice(id.from, id.to), labels });
    },
  });
  return { errors, selectors };
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
    const { errors, selectors } = parseQuery(expr);
    out.push(...errors);
    for (const { metric, labels } of selectors) {
      const have = exposed.get(metric);
      if (!have) {
        out.push(`${metric}: not in /metrics (in ${expr})`);
        continue;
      }
      for (const l of labels) if (!SCRAPE_LABELS.has(l) && !have.has(l)) out.push(`${metric}: has no label "${l}" (in ${expr})`);
    }
  }
  return out;
}

const metricNames = (exprs: string[]): Set<string> => new Set(exprs.flatMap((e) => parseQuery(e).selectors.map((s) => s.metric)));

test('the Grafana dashboard is well formed and covers throughput, ratio, RTT, loss, connections, restarts and outages', () => {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of d.panels) {
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title}: fits the 24-column grid`);
    if (p.type === 'row') continue;
    assert.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's own variable syntax, not a template literal
    for (const t of p.targets!) assert.equal(t.datasource.uid, '${datasource}', `${p.title}: uses the dashboard's datasource variable`);
  }
  const exprs = queries(d);
  assert.deepEqual(
    exprs.flatMap((e) => parseQuery(e).errors),
    [],
    'every query parses as PromQL',
  );
  const names = metricNames(exprs);
  assert.ok(
    [...names].every((n) => n.startsWith('longhaul_')),
    [...names].join(' '),
  );
  for (const needed of [
    'longhaul_association_raw_bytes_out_total',
    'longhaul_association_wire_bytes_out_total', // throughput raw vs wire, ratio
    'longhaul_association_send_rate_bps',
    'longhaul_association_bandwidth_bps',
    'longhaul_association_rtt_seconds',
    'longhaul_association_packets_lost_total',
    'longhaul_association_stream_bytes_retransmitted_total',
    'longhaul_tunnel_connections',
    'longhaul_peer_restarts_detected_total',
    'longhaul_peer_reassociations_total',
    'longhaul_peer_outages_total',
    'longhaul_peer_reachable',
  ])
    assert.ok(names.has(needed), `the dashboard queries ${needed}`);
});

test('every metric the Grafana dashboard queries is in /metrics of a live gateway, with the labels it selects on', {
  timeout: 60_000,
}, async () => {
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
    const queried = metricNames(exprs);
    assert.ok(queried.size >= 30, `${queried.size} metrics queried`);
    assert.deepEqual(problems(exprs, exposed), []);
    // The check itself catches a missing metric, a missing label and a syntax error.
    assert.equal(
      problems(['rate(longhaul_no_such_metric[1m])', 'longhaul_connections{peer="b"}', 'rate(longhaul_connections[1m]'], exposed).length,
      3,
    );
  } finally {
    await pair.stop();
    await target.close();
  }
});
