// Codec counters, incremented by the encoder and decoder where things happen. The gateway
// may hand one CodecStats to every stream's encoder and decoder to get per-connection totals.

export interface EncodeCounters {
  /** Application bytes given to encode(). */
  bytesIn: number;
  /** Framed bytes returned (headers + payloads): what the transport stream carries. */
  bytesOut: number;
  blocks: number;
  /** Blocks sent as codec `none`, for any reason (sum of the four below). */
  blocksRaw: number;
  /** Compression tried and failed the 80% rule. */
  blocksRawIncompressible: number;
  /** Not tried: a high-entropy piece of a block cut by entropy (entropy-split.ts). */
  blocksRawHighEntropy: number;
  /** Not tried: back-off after failures. */
  blocksRawBackoff: number;
  /** Not tried: mode/adaptive choice was `none`, or the block was too small to be worth it. */
  blocksRawByChoice: number;
  blocksLz4: number;
  blocksZstd: number;
  /** Wall time inside compression calls (the codec runs synchronously, so this is its CPU time). */
  cpuMs: number;
}

export interface DecodeCounters {
  /** Framed bytes pushed into the decoder. */
  bytesIn: number;
  /** Decoded application bytes returned. */
  bytesOut: number;
  blocks: number;
  blocksRaw: number;
  blocksLz4: number;
  blocksZstd: number;
  cpuMs: number;
  /** Streams failed with a protocol error (at most one per decoder). */
  errors: number;
}

/** `auto`'s check against raw (arbiter.ts), summed over the streams' encoders. */
export interface ArbiterCounters {
  /** Trials of raw against the model's choice. */
  trials: number;
  /** Switches to raw (a trial raw won) and to the model's choice (raw filled the link). */
  toRaw: number;
  toCodec: number;
  /** Streams that started from a verdict another stream of the association reached (path-memory.ts). */
  startsFromPath: number;
}

/** Blocks and bytes per setting that produced them ("zstd:7", "lz4", "none" for raw blocks). */
export interface SettingCounters {
  blocks: number;
  bytesIn: number;
  /** Block payload bytes (headers excluded). */
  bytesOut: number;
}

export interface CodecStatsSnapshot {
  encode: EncodeCounters & {
    ratio: number;
    setting: string;
    bySetting: Record<string, SettingCounters>;
    /** 'auto': the measured busy share of the encoding thread's event loop (null: not measured). */
    loopBusy: number | null;
    arbiter: ArbiterCounters;
  };
  decode: DecodeCounters & { ratio: number };
}

function emptyEncode(): EncodeCounters {
  return {
    bytesIn: 0,
    bytesOut: 0,
    blocks: 0,
    blocksRaw: 0,
    blocksRawIncompressible: 0,
    blocksRawHighEntropy: 0,
    blocksRawBackoff: 0,
    blocksRawByChoice: 0,
    blocksLz4: 0,
    blocksZstd: 0,
    cpuMs: 0,
  };
}

function emptyDecode(): DecodeCounters {
  return { bytesIn: 0, bytesOut: 0, blocks: 0, blocksRaw: 0, blocksLz4: 0, blocksZstd: 0, cpuMs: 0, errors: 0 };
}

export class CodecStats {
  readonly encode: EncodeCounters = emptyEncode();
  readonly decode: DecodeCounters = emptyDecode();
  readonly arbiter: ArbiterCounters = { trials: 0, toRaw: 0, toCodec: 0, startsFromPath: 0 };
  /** The encoder's current codec choice, e.g. "zstd:3", "lz4", "none" (probes and back-off aside). */
  setting = 'none';
  /** Per setting actually used, probes included: shows what 'auto' did over a whole transfer. */
  readonly bySetting = new Map<string, SettingCounters>();
  loopBusy: number | null = null;

  countBlock(setting: string, bytesIn: number, bytesOut: number): void {
    let c = this.bySetting.get(setting);
    if (!c) {
      c = { blocks: 0, bytesIn: 0, bytesOut: 0 };
      this.bySetting.set(setting, c);
    }
    c.blocks++;
    c.bytesIn += bytesIn;
    c.bytesOut += bytesOut;
  }

  /**
   * Plain copy for status/metrics. `ratio` is wire bytes / application bytes (framing
   * included), so 0.25 means the link carried a quarter of the data; 1 when nothing flowed yet.
   */
  snapshot(): CodecStatsSnapshot {
    return {
      encode: {
        ...this.encode,
        ratio: ratio(this.encode.bytesOut, this.encode.bytesIn),
        setting: this.setting,
        bySetting: Object.fromEntries([...this.bySetting].map(([k, c]) => [k, { ...c }])),
        loopBusy: this.loopBusy,
        arbiter: { ...this.arbiter },
      },
      decode: { ...this.decode, ratio: ratio(this.decode.bytesIn, this.decode.bytesOut) },
    };
  }
}

function ratio(wire: number, app: number): number {
  return app === 0 ? 1 : wire / app;
}
