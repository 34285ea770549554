/**
 * Synthetic packet captures for the edge cases a real tcpdump run cannot be
 * made to produce on demand (out of order, overlap, holes, snap length,
 * several interfaces, VLAN, cooked v2, nanosecond or big-endian files):
 * TCP conversations built segment by segment, wrapped in a link layer and
 * written as classic pcap or pcapng.
 */

export interface Endpoint {
  address: string;
  port: number;
}

export interface BuiltPacket {
  /** Epoch ms (microsecond resolution). */
  t: number;
  /** The IP packet (v4 or v6). */
  ip: Buffer;
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function ipv6Bytes(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** An IP packet carrying one TCP segment. */
export function tcpPacket(src: Endpoint, dst: Endpoint, seq: number, ack: number, flags: number, payload: Buffer = Buffer.alloc(0), window = 65535): Buffer {
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(src.port, 0);
  tcp.writeUInt16BE(dst.port, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(ack >>> 0, 8);
  tcp[12] = 5 << 4;
  tcp[13] = flags;
  tcp.writeUInt16BE(window, 14);
  const segment = Buffer.concat([tcp, payload]);
  if (src.address.includes(':')) {
    const ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(segment.length, 4);
    ip[6] = 6;
    ip[7] = 64;
    ipv6Bytes(src.address).copy(ip, 8);
    ipv6Bytes(dst.address).copy(ip, 24);
    return Buffer.concat([ip, segment]);
  }
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + segment.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = 6;
  ipv4Bytes(src.address).copy(ip, 12);
  ipv4Bytes(dst.address).copy(ip, 16);
  return Buffer.concat([ip, segment]);
}

/**
 * One TCP connection, segment by segment, with sequence numbers kept for
 * each side; `at` advances the clock. Segments come out in the order they
 * were built; reorder or drop them to make holes.
 */
export class TcpConversation {
  readonly packets: BuiltPacket[] = [];
  t: number;
  readonly #next = { client: 1000, server: 5_000_000 };

  constructor(
    readonly client: Endpoint,
    readonly server: Endpoint,
    t0 = 1_700_000_000_000,
  ) {
    this.t = t0;
  }

  /** Sequence number each side will send next. */
  nextSeq(side: 'client' | 'server'): number {
    return this.#next[side];
  }

  at(ms: number): this {
    this.#advance(ms);
    return this;
  }

  /** Kept to whole microseconds, as a capture's timestamps are. */
  #advance(ms: number): void {
    this.t = Math.round((this.t + ms) * 1000) / 1000;
  }

  handshake(): this {
    this.#push('client', TCP.SYN, Buffer.alloc(0), { ack: 0 });
    this.#next.client++;
    this.#push('server', TCP.SYN | TCP.ACK, Buffer.alloc(0));
    this.#next.server++;
    this.#push('client', TCP.ACK, Buffer.alloc(0));
    return this;
  }

  /** Data from `side`, as one segment or cut into segments of `segmentSize`; returns the packets made. */
  send(side: 'client' | 'server', data: Buffer | string, segmentSize = 1400, window = 65535): BuiltPacket[] {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    const made: BuiltPacket[] = [];
    for (let o = 0; o < bytes.length; o += segmentSize) {
      const part = bytes.subarray(o, o + segmentSize);
      made.push(this.#push(side, TCP.PSH | TCP.ACK, part, { window }));
      this.#next[side] += part.length;
    }
    return made;
  }

  ack(side: 'client' | 'server', window = 65535): BuiltPacket {
    return this.#push(side, TCP.ACK, Buffer.alloc(0), { window });
  }

  fin(side: 'client' | 'server'): BuiltPacket {
    const p = this.#push(side, TCP.FIN | TCP.ACK, Buffer.alloc(0));
    this.#next[side]++;
    return p;
  }

  rst(side: 'client' | 'server'): BuiltPacket {
    return this.#push(side, TCP.RST | TCP.ACK, Buffer.alloc(0));
  }

  /** A segment with explicit sequence number (a retransmission, an overlap). */
  raw(side: 'client' | 'server', seq: number, payload: Buffer, flags: number = TCP.PSH | TCP.ACK): BuiltPacket {
    return this.#push(side, flags, payload, { seq });
  }

  #push(side: 'client' | 'server', flags: number, payload: Buffer, o: { seq?: number; ack?: number; window?: number } = {}): BuiltPacket {
    const other = side === 'client' ? 'server' : 'client';
    const [src, dst] = side === 'client' ? [this.client, this.server] : [this.server, this.client];
    const packet = { t: this.t, ip: tcpPacket(src, dst, o.seq ?? this.#next[side], o.ack ?? this.#next[other], flags, payload, o.window ?? 65535) };
    this.packets.push(packet);
    this.#advance(0.1);
    return packet;
  }
}

export type LinkType = 'ethernet' | 'ethernet-vlan' | 'sll' | 'sll2' | 'null' | 'raw';

export const LINK_TYPE_NUMBER: Record<LinkType, number> = { ethernet: 1, 'ethernet-vlan': 1, sll: 113, sll2: 276, null: 0, raw: 101 };

/** The IP packet in a link-layer frame. */
export function frameOf(link: LinkType, ip: Buffer): Buffer {
  const v6 = (ip[0] as number) >> 4 === 6;
  const etherType = v6 ? 0x86dd : 0x0800;
  switch (link) {
    case 'ethernet':
    case 'ethernet-vlan': {
      const tag = link === 'ethernet-vlan' ? Buffer.from([0x81, 0x00, 0x00, 0x2a]) : Buffer.alloc(0);
      const type = Buffer.alloc(2);
      type.writeUInt16BE(etherType);
      const frame = Buffer.concat([Buffer.alloc(12, 0x02), tag, type, ip]);
      // Ethernet's minimum frame: short ones are padded (the IP length says where the packet ends).
      return frame.length < 60 ? Buffer.concat([frame, Buffer.alloc(60 - frame.length, 0xee)]) : frame;
    }
    case 'sll': {
      const header = Buffer.alloc(16);
      header.writeUInt16BE(0, 0);
      header.writeUInt16BE(772, 2);
      header.writeUInt16BE(6, 4);
      header.writeUInt16BE(etherType, 14);
      return Buffer.concat([header, ip]);
    }
    case 'sll2': {
      const header = Buffer.alloc(20);
      header.writeUInt16BE(etherType, 0);
      header.writeUInt32BE(1, 4);
      header.writeUInt16BE(772, 8);
      header[11] = 6;
      return Buffer.concat([header, ip]);
    }
    case 'null': {
      const header = Buffer.alloc(4);
      header.writeUInt32LE(v6 ? 30 : 2);
      return Buffer.concat([header, ip]);
    }
    default:
      return ip;
  }
}

export interface PcapOptions {
  link?: LinkType;
  nano?: boolean;
  bigEndian?: boolean;
  /** Bytes kept of each frame (the rest is cut, as tcpdump -s does). */
  snapLength?: number;
}

/** A classic pcap file. */
export function pcapFile(packets: readonly BuiltPacket[], options: PcapOptions = {}): Buffer {
  const link = options.link ?? 'ethernet';
  const snap = options.snapLength ?? 262144;
  const be = options.bigEndian === true;
  const u32 = (b: Buffer, v: number, o: number): number => (be ? b.writeUInt32BE(v >>> 0, o) : b.writeUInt32LE(v >>> 0, o));
  const u16 = (b: Buffer, v: number, o: number): number => (be ? b.writeUInt16BE(v, o) : b.writeUInt16LE(v, o));
  const header = Buffer.alloc(24);
  u32(header, options.nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  u16(header, 2, 4);
  u16(header, 4, 6);
  u32(header, snap, 16);
  u32(header, LINK_TYPE_NUMBER[link], 20);
  const records = packets.map((p) => {
    const frame = frameOf(link, p.ip);
    const kept = frame.subarray(0, Math.min(frame.length, snap));
    const r = Buffer.alloc(16);
    const seconds = Math.floor(p.t / 1000);
    const micros = Math.round((p.t - seconds * 1000) * 1000);
    u32(r, seconds, 0);
    u32(r, options.nano ? micros * 1000 : micros, 4);
    u32(r, kept.length, 8);
    u32(r, frame.length, 12);
    return Buffer.concat([r, kept]);
  });
  return Buffer.concat([header, ...records]);
}

function block(type: number, body: Buffer): Buffer {
  const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
  const out = Buffer.alloc(12 + padded.length);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(out.length, 4);
  padded.copy(out, 8);
  out.writeUInt32LE(out.length, out.length - 4);
  return out;
}

function option(code: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16LE(code, 0);
  head.writeUInt16LE(value.length, 2);
  return Buffer.concat([head, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
}

export interface PcapngInterface {
  link: LinkType;
  /** if_tsresol: 10^-n seconds (default 6: microseconds). */
  resolutionDigits?: number;
}

/** A pcapng file (little-endian): interfaces, packets as (interface, packet), then optional drop statistics per interface. */
export function pcapngFile(interfaces: readonly PcapngInterface[], packets: ReadonlyArray<{ iface: number; packet: BuiltPacket }>, dropped: ReadonlyArray<number | null> = []): Buffer {
  const shb = Buffer.alloc(16);
  shb.writeUInt32LE(0x1a2b3c4d, 0);
  shb.writeUInt16LE(1, 4);
  shb.writeBigInt64LE(-1n, 8);
  const blocks = [block(0x0a0d0d0a, shb)];
  for (const iface of interfaces) {
    const idb = Buffer.alloc(8);
    idb.writeUInt16LE(LINK_TYPE_NUMBER[iface.link], 0);
    idb.writeUInt32LE(262144, 4);
    const options = iface.resolutionDigits === undefined ? [] : [option(9, Buffer.from([iface.resolutionDigits]))];
    blocks.push(block(1, Buffer.concat([idb, ...options, option(0, Buffer.alloc(0))])));
  }
  const units = (iface: number, t: number): bigint => {
    const digits = interfaces[iface]?.resolutionDigits ?? 6;
    return (BigInt(Math.round(t * 1000)) * 10n ** BigInt(digits)) / 1_000_000n;
  };
  let lastT = 0;
  for (const { iface, packet } of packets) {
    const frame = frameOf((interfaces[iface] as PcapngInterface).link, packet.ip);
    const epb = Buffer.alloc(20);
    const ts = units(iface, packet.t);
    epb.writeUInt32LE(iface, 0);
    epb.writeUInt32LE(Number(ts >> 32n), 4);
    epb.writeUInt32LE(Number(ts & 0xffffffffn), 8);
    epb.writeUInt32LE(frame.length, 12);
    epb.writeUInt32LE(frame.length, 16);
    blocks.push(block(6, Buffer.concat([epb, frame])));
    lastT = packet.t;
  }
  dropped.forEach((count, iface) => {
    if (count === null) return;
    const isb = Buffer.alloc(12);
    const ts = units(iface, lastT);
    isb.writeUInt32LE(iface, 0);
    isb.writeUInt32LE(Number(ts >> 32n), 4);
    isb.writeUInt32LE(Number(ts & 0xffffffffn), 8);
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(BigInt(count));
    blocks.push(block(5, Buffer.concat([isb, option(5, value), option(0, Buffer.alloc(0))])));
  });
  return Buffer.concat(blocks);
}

/** A WebSocket handshake request and its 101 answer, as the app and nginx would send them. */
export const HANDSHAKE_REQUEST =
  'GET /ws?pcap=1 HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: upgrade\r\nX-Real-IP: 203.0.113.7\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
export const HANDSHAKE_RESPONSE = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';
