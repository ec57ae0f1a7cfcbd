// Codec benchmark: ratio and MB/s (compress, decompress) of each codec setting on the vm
// and random payloads, then the BlockEncoder end to end (80% rule, back-off, auto choice).
// Run under the bench lock: `flock /tmp/longhaul-bench.lock npm run bench:codec [-- --mib 64]`.
// Writes bench/results/codec-<date>.json and .md.

import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { CODEC_LZ4, CODEC_ZSTD } from '../codec/block-format.ts';
import { compressWith, decompressWith } from '../codec/codecs.ts';
import type { CodecSetting } from '../codec/codecs.ts';
import { BlockEncoder, MAX_COMPRESSED_FRACTION } from '../codec/encoder.ts';
import type { CompressionMode } from '../codec/encoder.ts';
import { BlockDecoder } from '../codec/decoder.ts';
import { DEFAULT_CPU_MARGIN, DEFAULT_CPU_SHARE, DEFAULT_LADDER, DEFAULT_WIRE_CPU_NS_PER_BYTE } from '../codec/adaptive.ts';
import { PayloadSource } from '../lab/workloads/payload.ts';
import type { PayloadKind } from '../lab/workloads/payload.ts';
import { benchCommand, intArg, positiveIntArg, positiveNumberArg } from './args.ts';

const args = benchCommand(
  'bench:codec',
  'ratio and speed of each codec setting on the vm and random payloads, then the BlockEncoder end to end; writes OUT/codec-<date>.{json,md}',
)
  .option('--mib <n>', 'MiB of each payload', positiveNumberArg, 64)
  .option('--block <KiB>', 'block size in KiB', positiveIntArg, 256)
  .option('--reps <n>', 'runs per measurement (the best is kept)', positiveIntArg, 3)
  .option('--out <dir>', 'results directory', 'bench/results')
  // The zstd level sweep (vm payload): ratio and speed per level and block size.
  .option('--no-sweep', 'skip the zstd level sweep')
  // Cutting blocks at entropy changes, on socket reads of several shapes (vm payload).
  .option('--no-cut', 'skip the entropy-cut measurement')
  .option('--seed <n>', 'payload seed', intArg, 7)
  .parse()
  .opts<{ mib: number; block: number; reps: number; out: string; sweep: boolean; cut: boolean; seed: number }>();
const SEED = args.seed;
const PAYLOAD_BYTES = Math.round(args.mib * 1024 * 1024);
const BLOCK = args.block * 1024;
const REPS = args.reps;
// Every run is bounded: a few passes over PAYLOAD_BYTES per setting, and this overall cap.
const DEADLINE_MS = 10 * 60 * 1000;
const started = performance.now();

const SETTINGS: CodecSetting[] = [
  { codec: 'lz4', level: 0 },
  { codec: 'zstd', level: -3 },
  { codec: 'zstd', level: -1 },
  { codec: 'zstd', level: 1 },
  { codec: 'zstd', level: 3 },
  { codec: 'zstd', level: 6 },
];

/** zstd levels for the sweep; above 9 zstd's speed falls off a cliff, measured once each. */
const SWEEP_LEVELS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 19];
const SWEEP_BLOCKS_KIB = [64, 256];
const SLOW_LEVEL = 12;

const label = (s: CodecSetting) => (s.codec === 'lz4' ? 'lz4' : `zstd ${s.level}`);
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1e3);
const round = (x: number, digits = 1) => Number(x.toFixed(digits));

function checkDeadline(): void {
  if (performance.now() - started > DEADLINE_MS) throw new Error('codec bench exceeded its time cap');
}

function payload(kind: PayloadKind, bytes: number): Buffer {
  const source = new PayloadSource(kind, bytes, { seed: SEED });
  const chunks: Buffer[] = [];
  for (let c = source.next(); c; c = source.next()) chunks.push(c);
  return Buffer.concat(chunks);
}

function blocksOf(data: Uint8Array, size: number): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  for (let o = 0; o < data.length; o += size) blocks.push(data.subarray(o, Math.min(o + size, data.length)));
  return blocks;
}

interface CodecRow {
  payload: PayloadKind;
  codec: string;
  blockKiB: number;
  ratio: number; // sum(compressed) / sum(original), no 80% rule
  wireRatio: number; // with the 80% rule (raw blocks count at original size)
  blocksCompressedPct: number;
  compressMBps: number; // original bytes per second of compress wall time (best of REPS)
  decompressMBps: number; // original bytes per second of decompress wall time (best of REPS)
  compressCpuMBps: number; // same per process CPU second (user+sys): less disturbed by other load
  decompressCpuMBps: number;
}

// Runs `fn` `reps` times; best wall ms and best CPU ms (process user+system).
function timed(fn: () => void, reps = REPS): { wallMs: number; cpuMs: number } {
  let wallMs = Infinity;
  let cpuMs = Infinity;
  for (let rep = 0; rep < reps; rep++) {
    checkDeadline();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    fn();
    wallMs = Math.min(wallMs, performance.now() - t0);
    const cpu = process.cpuUsage(cpu0);
    cpuMs = Math.min(cpuMs, (cpu.user + cpu.system) / 1000);
  }
  return { wallMs, cpuMs };
}

function measureCodec(kind: PayloadKind, data: Uint8Array, setting: CodecSetting, blockSize: number, reps = REPS): CodecRow {
  const blocks = blocksOf(data, blockSize);
  let compressed: Uint8Array[] = [];
  const compress = timed(() => {
    const out: Uint8Array[] = [];
    for (const b of blocks) out.push(compressWith(setting, b));
    compressed = out;
  }, reps);
  const id = setting.codec === 'lz4' ? CODEC_LZ4 : CODEC_ZSTD;
  const decompress = timed(() => {
    for (let i = 0; i < blocks.length; i++) {
      const r = decompressWith(id, compressed[i]!, blocks[i]!.length);
      if (!r.ok) throw new Error(`round trip failed: ${JSON.stringify(r.error)}`);
    }
  }, reps);
  let sum = 0;
  let wire = 0;
  let kept = 0;
  for (let i = 0; i < blocks.length; i++) {
    const c = compressed[i]!.length;
    const o = blocks[i]!.length;
    sum += c;
    if (c <= o * MAX_COMPRESSED_FRACTION) {
      wire += c;
      kept++;
    } else wire += o;
  }
  return {
    payload: kind,
    codec: label(setting),
    blockKiB: blockSize / 1024,
    ratio: round(sum / data.length, 3),
    wireRatio: round(wire / data.length, 3),
    blocksCompressedPct: round((100 * kept) / blocks.length, 0),
    compressMBps: round(mbps(data.length, compress.wallMs)),
    decompressMBps: round(mbps(data.length, decompress.wallMs)),
    compressCpuMBps: round(mbps(data.length, compress.cpuMs)),
    decompressCpuMBps: round(mbps(data.length, decompress.cpuMs)),
  };
}

interface EncoderRow {
  payload: PayloadKind;
  mode: string;
  linkMbps: number | null;
  wireRatio: number;
  encodeMBps: number; // wall clock, framing included
  decodeMBps: number;
  codecCpuMs: number;
  finalSetting: string;
  blocks: number;
  blocksRaw: number;
  blocksRawIncompressible: number;
  blocksRawBackoff: number;
  blocksLz4: number;
  blocksZstd: number;
  /** auto only: the policy's model at the end, per rung (why it chose what it chose). */
  model?: { rung: string; speedMBps: number; wireRatio: number; throughputMBps: number; eligible: boolean }[];
}

// The gateway hands the encoder what a socket read returned; 64 KiB is a typical TCP read.
const SOCKET_READ = 64 * 1024;

function measureEncoder(kind: PayloadKind, data: Uint8Array, mode: CompressionMode, linkMbps: number | null): EncoderRow {
  checkDeadline();
  // With a link, reads arrive at the pace the link drains the encoder's output (the gateway's
  // backpressure): the encoder's clock skips ahead by the link time its output needs beyond the
  // CPU time it took, so 'auto' sees its real output rate. Timings inside a call stay real.
  let skippedMs = 0;
  const now = () => performance.now() + skippedMs;
  // A fixed CPU share (a whole core) so the rows do not depend on the load when they ran.
  const encoder = new BlockEncoder({
    mode,
    maxBlockSize: BLOCK,
    now,
    cpuShare: DEFAULT_CPU_SHARE,
    ...(linkMbps ? { linkRateBps: linkMbps * 1e6 } : {}),
  });
  const reads = blocksOf(data, SOCKET_READ);
  const framed: Uint8Array[] = [];
  const t0 = performance.now();
  for (const r of reads) {
    const started = performance.now();
    const out = encoder.encode(r);
    framed.push(out);
    if (linkMbps) skippedMs += Math.max(0, (out.length * 8) / (linkMbps * 1e3) - (performance.now() - started));
  }
  const encodeMs = performance.now() - t0;
  const decoder = new BlockDecoder({ maxBlockSize: BLOCK });
  let decoded = 0;
  const t1 = performance.now();
  for (const f of framed) {
    const r = decoder.push(f);
    if (!r.ok) throw new Error(`decode failed: ${JSON.stringify(r.error)}`);
    for (const d of r.data) decoded += d.length;
  }
  const decodeMs = performance.now() - t1;
  if (decoded !== data.length) throw new Error('decoded length differs');
  const s = encoder.stats.snapshot().encode;
  const policy = encoder.adaptive;
  const model = policy
    ? DEFAULT_LADDER.map((rung, k) => ({
        rung: rung.setting === null ? 'none' : rung.setting.codec === 'lz4' ? 'lz4' : `zstd ${rung.setting.level}`,
        speedMBps: round(policy.estimate(k).speedBytesPerSec / 1e6),
        wireRatio: round(policy.estimate(k).wireRatio, 3),
        throughputMBps: round(policy.throughput(k) / 1e6),
        eligible: policy.eligible(k),
      }))
    : undefined;
  return {
    payload: kind,
    mode,
    linkMbps,
    wireRatio: round(s.ratio, 3),
    encodeMBps: round(mbps(data.length, encodeMs)),
    decodeMBps: round(mbps(data.length, decodeMs)),
    codecCpuMs: round(s.cpuMs, 0),
    finalSetting: s.setting,
    blocks: s.blocks,
    blocksRaw: s.blocksRaw,
    blocksRawIncompressible: s.blocksRawIncompressible,
    blocksRawBackoff: s.blocksRawBackoff,
    blocksLz4: s.blocksLz4,
    blocksZstd: s.blocksZstd,
    ...(model ? { model } : {}),
  };
}

function machine() {
  const cpus = os.cpus();
  let nproc = cpus.length;
  try {
    nproc = Number(execSync('nproc').toString().trim());
  } catch {
    /* keep os.cpus() count */
  }
  return {
    date: new Date().toISOString(),
    nproc,
    cpuModel: cpus[0]?.model ?? 'unknown',
    node: process.version,
    zstd: process.versions.zstd ?? 'bundled',
    loadavg: os.loadavg().map((x) => round(x, 2)),
  };
}

// What a link needs from the codec: application bytes/s to keep it busy at a wire ratio, times the margin.
function neededMBps(linkMbps: number, wireRatio: number): number {
  return (linkMbps / 8 / wireRatio) * DEFAULT_CPU_MARGIN;
}

function sweepSection(rows: CodecRow[]): string[] {
  if (rows.length === 0) return [];
  const lines = [
    '## zstd level sweep (vm payload)',
    '',
    `Levels ${SWEEP_LEVELS.join(', ')} on ${SWEEP_BLOCKS_KIB.join(' and ')} KiB blocks (levels >= ${SLOW_LEVEL}: one run). "Clears 100 Mbit/s" means the`,
    `compress speed (per CPU second) is at least ${DEFAULT_CPU_MARGIN}x (the \`auto\` CPU margin) the application bytes/s that keep a`,
    "100 Mbit/s link busy at that wire ratio, before the rest of the gateway's CPU per wire byte is counted. Decompression",
    'stays bounded at every level: the decoder caps output at the declared block size (max 256 KiB by default).',
    '',
    '| block KiB | zstd level | ratio | wire ratio | wire vs level 1 | compress MB/s CPU | decompress MB/s CPU | clears 100 Mbit/s | clears 1 Gbit/s |',
    '|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const r of rows) {
    const base = rows.find((x) => x.blockKiB === r.blockKiB && x.codec === 'zstd 1');
    const vsBase = base ? `${((r.wireRatio / base.wireRatio - 1) * 100).toFixed(1)}%` : '';
    const clears = (mbit: number) => (r.compressCpuMBps >= neededMBps(mbit, r.wireRatio) ? 'yes' : 'no');
    lines.push(
      `| ${r.blockKiB} | ${r.codec.replace('zstd ', '')} | ${r.ratio} | ${r.wireRatio} | ${vsBase} | ${r.compressCpuMBps} | ${r.decompressCpuMBps} | ${clears(100)} | ${clears(1000)} |`,
    );
  }
  lines.push('');
  return lines;
}

interface CutRow {
  level: number;
  reads: string;
  cut: boolean;
  wireRatio: number;
  /** Application bytes per CPU second of encode() (cut, compression, framing). */
  encodeCpuMBps: number;
  pieces: number;
  rawHighEntropy: number;
}

// Socket reads as TCP delivers them: 64 KiB in step with the payload, 64 KiB shifted by 16 KiB
// (half of the vm image's 32 KiB runs of page classes), and random lengths of 48-64 KiB.
const READ_PATTERNS: Array<[string, (i: number) => number]> = [
  ['64 KiB', () => 64 * 1024],
  ['64 KiB, shifted 16 KiB', (i) => (i === 0 ? 16 * 1024 : 64 * 1024)],
  ['48-64 KiB', (i) => 48 * 1024 + ((Math.imul(i + 1, 0x9e3779b1) >>> 0) % (16 * 1024))],
];

function measureCut(data: Uint8Array, level: number, reads: string, readSize: (i: number) => number, cut: boolean): CutRow {
  checkDeadline();
  const encoder = new BlockEncoder({ mode: 'zstd', zstdLevel: level, maxBlockSize: BLOCK, entropySplit: cut });
  const cpu0 = process.cpuUsage();
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = readSize(i);
    encoder.encode(data.subarray(at, Math.min(at + size, data.length)));
    at += size;
  }
  const cpu = process.cpuUsage(cpu0);
  const s = encoder.stats.snapshot().encode;
  return {
    level,
    reads,
    cut,
    wireRatio: round(s.ratio, 4),
    encodeCpuMBps: round(mbps(data.length, (cpu.user + cpu.system) / 1000)),
    pieces: s.blocks,
    rawHighEntropy: s.blocksRawHighEntropy,
  };
}

function cutSection(rows: CutRow[]): string[] {
  if (rows.length === 0) return [];
  return [
    '## Cutting blocks at entropy changes (vm payload, zstd 5 and 7)',
    '',
    'BlockEncoder with a fixed zstd level fed socket reads of three shapes, with and without the cut',
    '(src/codec/entropy-split.ts; `auto` cuts at zstd 5 and up). Wire ratio = framed output / input;',
    'encode MB/s per CPU second includes the cut, compression and framing.',
    '',
    '| zstd level | reads | cut | wire ratio | encode MB/s CPU | blocks | raw high-entropy pieces |',
    '|---:|---|---|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.level} | ${r.reads} | ${r.cut ? 'yes' : 'no'} | ${r.wireRatio} | ${r.encodeCpuMBps} | ${r.pieces} | ${r.rawHighEntropy} |`,
    ),
    '',
  ];
}

function markdown(
  info: ReturnType<typeof machine>,
  codecRows: CodecRow[],
  encoderRows: EncoderRow[],
  sweepRows: CodecRow[],
  cutRows: CutRow[],
): string {
  const lines = [
    `# Codec benchmark, ${info.date}`,
    '',
    `Machine: ${info.nproc} CPUs (${info.cpuModel}), Node ${info.node}, load ${info.loadavg.join(' ')} at start.`,
    `Payloads: ${args.mib} MiB each of \`vm\` and \`random\` (src/lab/workloads/payload.ts, seed ${SEED}). Best of ${REPS} runs;`,
    'the machine is shared, so expect noise. Ratio = compressed / original (lower is better); wire ratio',
    'applies the 80% rule (blocks that do not shrink below 80% count at full size).',
    '',
    '## Codecs',
    '',
    'MB/s are original bytes per second of wall time; "CPU" columns per second of process CPU time.',
    '',
    '| payload | codec | block KiB | ratio | wire ratio | blocks compressed | compress MB/s | decompress MB/s | compress MB/s CPU | decompress MB/s CPU |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...codecRows.map(
      (r) =>
        `| ${r.payload} | ${r.codec} | ${r.blockKiB} | ${r.ratio} | ${r.wireRatio} | ${r.blocksCompressedPct}% | ${r.compressMBps} | ${r.decompressMBps} | ${r.compressCpuMBps} | ${r.decompressCpuMBps} |`,
    ),
    '',
    ...sweepSection(sweepRows),
    ...cutSection(cutRows),
    `## BlockEncoder end to end (${SOCKET_READ / 1024} KiB reads, ${BLOCK / 1024} KiB max block)`,
    '',
    'Encode MB/s is wall time per application byte including framing; codec CPU ms is time inside',
    'compression calls (random data shows the back-off: few blocks are tried). In `auto` rows with a link,',
    "the encoder's clock advances at the pace the link drains its output (as the gateway's backpressure would),",
    'so its output-rate floor sees the link; encode MB/s is still CPU wall time.',
    '',
    '| payload | mode | link Mbit/s | wire ratio | encode MB/s | decode MB/s | codec CPU ms | final setting | blocks | raw (incompressible / back-off) | lz4 | zstd |',
    '|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|',
    ...encoderRows.map(
      (r) =>
        `| ${r.payload} | ${r.mode} | ${r.linkMbps ?? '-'} | ${r.wireRatio} | ${r.encodeMBps} | ${r.decodeMBps} | ${r.codecCpuMs} | ${r.finalSetting} | ${r.blocks} | ${r.blocksRaw} (${r.blocksRawIncompressible} / ${r.blocksRawBackoff}) | ${r.blocksLz4} | ${r.blocksZstd} |`,
    ),
    '',
    '## Why auto chose what it chose',
    '',
    "The policy's model after the run: per rung, estimated codec speed (MB/s per CPU second), wire",
    `ratio and predicted throughput min(${DEFAULT_CPU_SHARE} / (1/speed + wire x p), link / wire) in MB/s, with the`,
    `default pipeline cost p = ${DEFAULT_WIRE_CPU_NS_PER_BYTE} ns per wire byte (src/codec/adaptive.ts). zstd 5 and 7 take part only while`,
    `that CPU rate is at least ${DEFAULT_CPU_MARGIN}x link / wire (marked "out" otherwise).`,
    '',
    ...encoderRows
      .filter((r) => r.model)
      .flatMap((r) => [
        `- ${r.payload} @ ${r.linkMbps} Mbit/s -> **${r.finalSetting}**: ` +
          r
            .model!.map(
              (m) =>
                `${m.rung} ${m.speedMBps === Infinity ? '' : `${m.speedMBps} MB/s x ${m.wireRatio} -> `}${m.throughputMBps}${m.eligible ? '' : ' (out)'}`,
            )
            .join('; '),
      ]),
    '',
  ];
  return lines.join('\n');
}

function main(): void {
  const info = machine();
  const codecRows: CodecRow[] = [];
  const encoderRows: EncoderRow[] = [];
  const sweepRows: CodecRow[] = [];
  const cutRows: CutRow[] = [];
  for (const kind of ['vm', 'random'] as const) {
    const data = payload(kind, PAYLOAD_BYTES);
    if (kind === 'vm' && args.cut) {
      for (const level of [5, 7]) {
        for (const [reads, size] of READ_PATTERNS) {
          for (const cut of [false, true]) {
            const row = measureCut(data, level, reads, size, cut);
            cutRows.push(row);
            console.log(JSON.stringify({ entropyCut: true, ...row }));
          }
        }
      }
    }
    if (kind === 'vm' && args.sweep) {
      for (const blockKiB of SWEEP_BLOCKS_KIB) {
        for (const level of SWEEP_LEVELS) {
          const row = measureCodec(kind, data, { codec: 'zstd', level }, blockKiB * 1024, level >= SLOW_LEVEL ? 1 : REPS);
          sweepRows.push(row);
          console.log(JSON.stringify({ sweep: true, ...row }));
        }
      }
    }
    for (const setting of SETTINGS) {
      const row = measureCodec(kind, data, setting, BLOCK);
      codecRows.push(row);
      console.log(JSON.stringify(row));
    }
    if (kind === 'vm' && BLOCK !== 64 * 1024) {
      // How much the block size costs in ratio and speed.
      for (const setting of [SETTINGS[0]!, SETTINGS[2]!, SETTINGS[3]!, SETTINGS[4]!]) {
        const row = measureCodec(kind, data, setting, 64 * 1024);
        codecRows.push(row);
        console.log(JSON.stringify(row));
      }
    }
    const runs: [CompressionMode, number | null][] = [
      ['none', null],
      ['lz4', null],
      ['zstd', null],
      ['auto', 10],
      ['auto', 100],
      ['auto', 1000],
      ['auto', 10000],
    ];
    for (const [mode, link] of runs) {
      const row = measureEncoder(kind, data, mode, link);
      encoderRows.push(row);
      console.log(JSON.stringify(row));
    }
  }
  const day = info.date.slice(0, 10);
  mkdirSync(args.out, { recursive: true });
  const base = `${args.out}/codec-${day}`;
  writeFileSync(
    `${base}.json`,
    `${JSON.stringify({ machine: info, payloadMiB: Number(args.mib), blockKiB: BLOCK / 1024, codecs: codecRows, zstdSweep: sweepRows, entropyCut: cutRows, encoder: encoderRows }, null, 2)}\n`,
  );
  writeFileSync(`${base}.md`, markdown(info, codecRows, encoderRows, sweepRows, cutRows));
  console.log(`wrote ${base}.json and ${base}.md`);
}

main();
