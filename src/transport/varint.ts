// Variable-length integers, QUIC style (RFC 9000 §16): the two top bits of the first byte give
// the length (1, 2, 4 or 8 bytes). Values are capped at Number.MAX_SAFE_INTEGER so they stay
// exact JS numbers; the wire format leaves room up to 2^62.

export const MAX_VARINT = Number.MAX_SAFE_INTEGER;

export function varintSize(v: number): number {
  return v < 0x40 ? 1 : v < 0x4000 ? 2 : v < 0x40000000 ? 4 : 8;
}

/** Writes `v` (0 <= v <= MAX_VARINT) at `pos`; returns the position after it. The caller checks space. */
export function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  if (v < 0x40) {
    buf[pos] = v;
    return pos + 1;
  }
  if (v < 0x4000) {
    buf[pos] = 0x40 | (v >>> 8);
    buf[pos + 1] = v & 0xff;
    return pos + 2;
  }
  if (v < 0x40000000) {
    buf[pos] = 0x80 | (v >>> 24);
    buf[pos + 1] = (v >>> 16) & 0xff;
    buf[pos + 2] = (v >>> 8) & 0xff;
    buf[pos + 3] = v & 0xff;
    return pos + 4;
  }
  const hi = Math.floor(v / 0x100000000);
  const lo = v >>> 0;
  buf[pos] = 0xc0 | (hi >>> 24);
  buf[pos + 1] = (hi >>> 16) & 0xff;
  buf[pos + 2] = (hi >>> 8) & 0xff;
  buf[pos + 3] = hi & 0xff;
  buf[pos + 4] = lo >>> 24;
  buf[pos + 5] = (lo >>> 16) & 0xff;
  buf[pos + 6] = (lo >>> 8) & 0xff;
  buf[pos + 7] = lo & 0xff;
  return pos + 8;
}

/**
 * Cursor over received bytes. Reads never throw: on truncation or an out-of-range value
 * `failed` becomes true and the read returns 0, so a decoder checks once per field group.
 */
export class Reader {
  buf: Uint8Array;
  pos: number;
  end: number;
  failed = false;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    if (this.pos >= this.end) {
      this.failed = true;
      return 0;
    }
    return this.buf[this.pos++]!;
  }

  varint(): number {
    const buf = this.buf;
    const p = this.pos;
    if (p >= this.end) {
      this.failed = true;
      return 0;
    }
    const b0 = buf[p]!;
    const len = 1 << (b0 >>> 6);
    if (p + len > this.end) {
      this.failed = true;
      return 0;
    }
    this.pos = p + len;
    switch (len) {
      case 1:
        return b0;
      case 2:
        return ((b0 & 0x3f) << 8) | buf[p + 1]!;
      case 4:
        return (b0 & 0x3f) * 0x1000000 + ((buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!);
      default: {
        const hi = (b0 & 0x3f) * 0x1000000 + ((buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!);
        if (hi > 0x1fffff) {
          // Beyond 2^53: not representable exactly; no legitimate field gets there.
          this.failed = true;
          return 0;
        }
        const lo = ((buf[p + 4]! << 24) | (buf[p + 5]! << 16) | (buf[p + 6]! << 8) | buf[p + 7]!) >>> 0;
        return hi * 0x100000000 + lo;
      }
    }
  }

  /** A view (no copy) of the next `n` bytes, or null when fewer remain. */
  bytes(n: number): Uint8Array | null {
    if (n > this.end - this.pos) {
      this.failed = true;
      return null;
    }
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
}
