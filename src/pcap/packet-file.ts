/**
 * Classic pcap (micro- and nanosecond, either byte order) and pcapng
 * (sections, several interfaces, per-interface timestamp resolution and
 * offset, enhanced/simple/obsolete packet blocks, interface statistics),
 * parsed from chunks of any size: a streaming reader keeps only the record
 * being completed, never the file. Pure: no I/O, never throws on bad input
 * except with a PacketFileError that says where.
 */

export const PCAP_MAGIC_MICRO = 0xa1b2c3d4;
export const PCAP_MAGIC_NANO = 0xa1b23c4d;
export const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;

const BLOCK_IDB = 1;
const BLOCK_OPB = 2;
const BLOCK_SPB = 3;
const BLOCK_ISB = 5;
const BLOCK_EPB = 6;

const OPT_END = 0;
const OPT_IF_TSRESOL = 9;
const OPT_IF_TSOFFSET = 14;
const OPT_ISB_IFRECV = 4;
const OPT_ISB_IFDROP = 5;
const OPT_ISB_OSDROP = 7;

/** Larger records than this are not packets but a damaged file. */
const MAX_RECORD_BYTES = 256 * 1024 * 1024;

export type PacketFileFormat = 'pcap' | 'pcapng';

/** pcap or pcapng by the first four bytes, or null. */
export function packetFileFormat(head: Buffer): PacketFileFormat | null {
  if (head.length < 4) return null;
  const be = head.readUInt32BE(0);
  const le = head.readUInt32LE(0);
  if (be === PCAPNG_SHB) return 'pcapng';
  if ([be, le].some((m) => m === PCAP_MAGIC_MICRO || m === PCAP_MAGIC_NANO)) return 'pcap';
  return null;
}

export interface CapturedPacket {
  /** 1-based, in file order (tshark's frame.number). */
  number: number;
  /** Epoch milliseconds, microsecond resolution. */
  t: number;
  linkType: number;
  interfaceId: number;
  /** The bytes the capture holds (at most the snap length). */
  data: Buffer;
  /** The packet's length on the wire. */
  originalLength: number;
}

/** What an interface statistics block (pcapng) counted. */
export interface InterfaceStatistics {
  interfaceId: number;
  t: number;
  received: number | null;
  /** Dropped by the interface and by the OS (libpcap's buffer): packets that are not in the file. */
  dropped: number | null;
}

export interface PacketFileHandlers {
  packet(packet: CapturedPacket): void;
  statistics?(stats: InterfaceStatistics): void;
}

export class PacketFileError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
  }
}

interface Interface {
  linkType: number;
  snapLength: number;
  /** Timestamp units per second (10^n or 2^n). */
  unitsPerSecond: bigint;
  offsetSeconds: bigint;
}

type Reader = { u16(b: Buffer, o: number): number; u32(b: Buffer, o: number): number };
const LE: Reader = { u16: (b, o) => b.readUInt16LE(o), u32: (b, o) => b.readUInt32LE(o) };
const BE: Reader = { u16: (b, o) => b.readUInt16BE(o), u32: (b, o) => b.readUInt32BE(o) };

/** Epoch ms, rounded to the microsecond, from a 64-bit timestamp in 1/unitsPerSecond units. */
function epochMs(ts: bigint, unitsPerSecond: bigint, offsetSeconds: bigint): number {
  const seconds = ts / unitsPerSecond + offsetSeconds;
  const fraction = Number(ts % unitsPerSecond) / Number(unitsPerSecond);
  return Math.round((Number(seconds) * 1000 + fraction * 1000) * 1000) / 1000;
}

/**
 * Push the file's bytes in order; handlers get each packet as soon as its
 * record is complete. `end()` says whether the file stopped mid-record.
 */
export class PacketFileParser {
  readonly #handlers: PacketFileHandlers;
  #pending: Buffer = Buffer.alloc(0);
  /** File offset of `#pending[0]`. */
  #offset = 0;
  #format: PacketFileFormat | null = null;
  #numbered = 0;
  // classic
  #classic: { r: Reader; nano: boolean; linkType: number; snapLength: number } | null = null;
  // pcapng: the current section's byte order and interfaces
  #r: Reader = LE;
  #interfaces: Interface[] = [];

  constructor(handlers: PacketFileHandlers) {
    this.#handlers = handlers;
  }

  get format(): PacketFileFormat | null {
    return this.#format;
  }

  /** Link types of the interfaces seen (classic: the one). */
  get linkTypes(): number[] {
    return this.#classic ? [this.#classic.linkType] : this.#interfaces.map((i) => i.linkType);
  }

  get snapLength(): number | null {
    return this.#classic?.snapLength ?? this.#interfaces[0]?.snapLength ?? null;
  }

  push(chunk: Buffer): void {
    const buf = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    let at = 0;
    for (;;) {
      const used = this.#format === 'pcapng' || (this.#format === null && packetFileFormat(buf.subarray(at)) === 'pcapng') ? this.#pcapngRecord(buf, at) : this.#classicRecord(buf, at);
      if (used === 0) break;
      at += used;
    }
    // Copied when small: a subarray would pin the whole chunk until the next push.
    this.#pending = at === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
    this.#offset += at;
  }

  /** The file's end: throws if nothing was recognised; returns the bytes of a record cut off at the end (0 when the file is whole). */
  end(): number {
    if (this.#format === null) throw new PacketFileError('not a pcap or pcapng file (no known magic number)', 0);
    return this.#pending.length;
  }

  /** One record (or the file header) at `at`; returns the bytes used, 0 when more are needed. */
  #classicRecord(buf: Buffer, at: number): number {
    const left = buf.length - at;
    if (!this.#classic) {
      if (left < 24) {
        if (left >= 4 && packetFileFormat(buf.subarray(at)) === null) this.#notPacketFile();
        return 0;
      }
      const be = buf.readUInt32BE(at);
      const r = be === PCAP_MAGIC_MICRO || be === PCAP_MAGIC_NANO ? BE : LE;
      const magic = r.u32(buf, at);
      if (magic !== PCAP_MAGIC_MICRO && magic !== PCAP_MAGIC_NANO) this.#notPacketFile();
      // The link type is the low 16 bits; the high ones may carry FCS information.
      this.#classic = { r, nano: magic === PCAP_MAGIC_NANO, snapLength: r.u32(buf, at + 16), linkType: r.u32(buf, at + 20) & 0xffff };
      this.#format = 'pcap';
      return 24;
    }
    if (left < 16) return 0;
    const { r, nano, linkType } = this.#classic;
    const captured = r.u32(buf, at + 8);
    if (captured > MAX_RECORD_BYTES) throw new PacketFileError(`packet record ${this.#numbered + 1} claims ${captured} bytes: the file is damaged`, this.#offset + at);
    if (left < 16 + captured) return 0;
    const seconds = r.u32(buf, at);
    const fraction = r.u32(buf, at + 4);
    const t = Math.round((seconds * 1000 + (nano ? fraction / 1e6 : fraction / 1e3)) * 1000) / 1000;
    this.#emit({
      number: ++this.#numbered,
      t,
      linkType,
      interfaceId: 0,
      data: buf.subarray(at + 16, at + 16 + captured),
      originalLength: r.u32(buf, at + 12),
    });
    return 16 + captured;
  }

  #pcapngRecord(buf: Buffer, at: number): number {
    const left = buf.length - at;
    if (left < 12) return 0;
    const type = buf.readUInt32BE(at) === PCAPNG_SHB ? PCAPNG_SHB : this.#r.u32(buf, at);
    if (type === PCAPNG_SHB) {
      const bom = buf.readUInt32BE(at + 8);
      if (bom === PCAPNG_BYTE_ORDER_MAGIC) this.#r = BE;
      else if (buf.readUInt32LE(at + 8) === PCAPNG_BYTE_ORDER_MAGIC) this.#r = LE;
      else throw new PacketFileError('pcapng section header without its byte-order magic', this.#offset + at);
      this.#interfaces = [];
      this.#format = 'pcapng';
    } else if (this.#format === null) {
      this.#notPacketFile();
    }
    const length = this.#r.u32(buf, at + 4);
    if (length < 12 || length % 4 !== 0 || length > MAX_RECORD_BYTES) throw new PacketFileError(`pcapng block of type ${type} with a bad length ${length}: the file is damaged`, this.#offset + at);
    if (left < length) return 0;
    const body = buf.subarray(at + 8, at + length - 4);
    switch (type) {
      case BLOCK_IDB:
        this.#interfaces.push(this.#interfaceOf(body));
        break;
      case BLOCK_EPB:
        this.#packet(body, at, this.#r.u32(body, 0));
        break;
      case BLOCK_OPB:
        this.#packet(body, at, this.#r.u16(body, 0));
        break;
      case BLOCK_SPB:
        this.#simplePacket(body, at);
        break;
      case BLOCK_ISB:
        this.#statistics(body);
        break;
      default:
        // Name resolution, journal, custom and unknown blocks: nothing a verdict needs.
        break;
    }
    return length;
  }

  #notPacketFile(): never {
    throw new PacketFileError('not a pcap or pcapng file (no known magic number)', this.#offset);
  }

  #options(body: Buffer, from: number, each: (code: number, value: Buffer) => void): void {
    const r = this.#r;
    let o = from;
    while (o + 4 <= body.length) {
      const code = r.u16(body, o);
      const length = r.u16(body, o + 2);
      if (code === OPT_END) break;
      const value = body.subarray(o + 4, Math.min(body.length, o + 4 + length));
      each(code, value);
      o += 4 + length + ((4 - (length % 4)) % 4);
    }
  }

  #interfaceOf(body: Buffer): Interface {
    const r = this.#r;
    const iface: Interface = { linkType: r.u16(body, 0), snapLength: r.u32(body, 4), unitsPerSecond: 1_000_000n, offsetSeconds: 0n };
    this.#options(body, 8, (code, value) => {
      if (code === OPT_IF_TSRESOL && value.length >= 1) {
        const v = value[0] as number;
        iface.unitsPerSecond = v & 0x80 ? 2n ** BigInt(v & 0x7f) : 10n ** BigInt(v);
      } else if (code === OPT_IF_TSOFFSET && value.length >= 8) {
        iface.offsetSeconds = this.#r === LE ? value.readBigInt64LE(0) : value.readBigInt64BE(0);
      }
    });
    return iface;
  }

  #interface(id: number, at: number): Interface {
    const iface = this.#interfaces[id];
    if (!iface) throw new PacketFileError(`packet block names interface ${id}, which no interface description block declared`, this.#offset + at);
    return iface;
  }

  #timestamp(body: Buffer, o: number, iface: Interface): number {
    const ts = (BigInt(this.#r.u32(body, o)) << 32n) | BigInt(this.#r.u32(body, o + 4));
    return epochMs(ts, iface.unitsPerSecond, iface.offsetSeconds);
  }

  /**
   * An enhanced packet block, or the obsolete packet block before it: the
   * same layout but for the interface id (32 bits, or 16 then a drop count).
   */
  #packet(body: Buffer, at: number, interfaceId: number): void {
    const r = this.#r;
    const iface = this.#interface(interfaceId, at);
    const captured = Math.min(r.u32(body, 12), body.length - 20);
    this.#emit({
      number: ++this.#numbered,
      t: this.#timestamp(body, 4, iface),
      linkType: iface.linkType,
      interfaceId,
      data: body.subarray(20, 20 + captured),
      originalLength: r.u32(body, 16),
    });
  }

  /** No timestamp: it takes the previous packet's (the format has none; pcapng recommends ordering by position). */
  #simplePacket(body: Buffer, at: number): void {
    const iface = this.#interface(0, at);
    const originalLength = this.#r.u32(body, 0);
    const captured = Math.min(originalLength, iface.snapLength || originalLength, body.length - 4);
    this.#emit({ number: ++this.#numbered, t: this.#lastT, linkType: iface.linkType, interfaceId: 0, data: body.subarray(4, 4 + captured), originalLength });
  }

  /** The previous packet's time, for simple packet blocks. */
  #lastT = 0;

  #emit(packet: CapturedPacket): void {
    this.#lastT = packet.t;
    this.#handlers.packet(packet);
  }

  #statistics(body: Buffer): void {
    const r = this.#r;
    const interfaceId = r.u32(body, 0);
    const iface = this.#interfaces[interfaceId];
    const t = iface ? this.#timestamp(body, 4, iface) : 0;
    let received: number | null = null;
    let dropped: number | null = null;
    const u64 = (v: Buffer): number => (v.length < 8 ? 0 : Number(this.#r === LE ? v.readBigUInt64LE(0) : v.readBigUInt64BE(0)));
    this.#options(body, 12, (code, value) => {
      if (code === OPT_ISB_IFRECV) received = u64(value);
      else if (code === OPT_ISB_IFDROP || code === OPT_ISB_OSDROP) dropped = (dropped ?? 0) + u64(value);
    });
    this.#handlers.statistics?.({ interfaceId, t, received, dropped });
  }
}
