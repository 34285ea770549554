/**
 * One captured packet -> the TCP segment it carries, through the link layer
 * (Ethernet with VLAN tags, Linux cooked v1 and v2, BSD loopback, raw IP),
 * IPv4 or IPv6 (extension headers skipped) and the TCP header. Pure. What
 * cannot be decoded says why (not TCP, a fragment, cut by the snap length),
 * so the reader can count it instead of decoding garbage.
 */

export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;
/** DLT_RAW as some systems number it (12, 14), and the IPv4/IPv6-only raw types. */
const RAW_LINK_TYPES: ReadonlySet<number> = new Set([LINKTYPE_RAW, 12, 14, 228, 229]);

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;
const ETHERTYPE_VLAN_OLD_QINQ = 0x9100;
const IPPROTO_TCP = 6;
/** IPv6 extension headers that may stand between the IPv6 header and TCP. */
const IPV6_EXTENSIONS: ReadonlySet<number> = new Set([0, 43, 60, 51]);
const IPV6_FRAGMENT = 44;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export interface TcpSegment {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  /** The payload bytes the capture holds. */
  payload: Buffer;
  /** The payload's length on the wire (from the IP length): more than `payload.length` when the snap length cut it. */
  payloadLength: number;
}

export type SegmentResult =
  | { kind: 'tcp'; segment: TcpSegment }
  | { kind: 'skip'; reason: 'not-ip' | 'not-tcp' | 'fragment' | 'truncated-header' | 'unknown-link-type' };

const skip = (reason: Extract<SegmentResult, { kind: 'skip' }>['reason']): SegmentResult => ({ kind: 'skip', reason });

export function linkTypeSupported(linkType: number): boolean {
  return [LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2].includes(linkType) || RAW_LINK_TYPES.has(linkType);
}

/** `originalLength`: the packet's length on the wire, to tell a payload cut by the snap length. */
export function tcpSegmentOf(linkType: number, data: Buffer, originalLength: number): SegmentResult {
  const ip = ipStart(linkType, data);
  if (ip === null) return skip('unknown-link-type');
  if (ip === 'truncated') return skip('truncated-header');
  if (ip === 'not-ip') return skip('not-ip');
  // Bytes of the packet on the wire past what the capture holds.
  const cut = Math.max(0, originalLength - data.length);
  const version = (data[ip] ?? 0) >> 4;
  if (version === 4) return ipv4(data, ip, cut);
  if (version === 6) return ipv6(data, ip, cut);
  return skip('not-ip');
}

/** Offset of the IP header, after the link header and any VLAN tags. */
function ipStart(linkType: number, data: Buffer): number | 'truncated' | 'not-ip' | null {
  if (RAW_LINK_TYPES.has(linkType)) return 0;
  switch (linkType) {
    case LINKTYPE_ETHERNET:
      return afterEtherType(data, 12);
    case LINKTYPE_LINUX_SLL:
      return afterEtherType(data, 14);
    case LINKTYPE_LINUX_SLL2:
      // The protocol type comes first in v2; the header is 20 bytes.
      if (data.length < 20) return 'truncated';
      // A VLAN tag, when the kernel kept it, follows the header: its TCI, then the inner type.
      return etherTypeIsIp(data.readUInt16BE(0)) ? 20 : data.readUInt16BE(0) === ETHERTYPE_VLAN ? afterEtherType(data, 22) : 'not-ip';
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
      if (data.length < 4) return 'truncated';
      // The address family in the capturing host's byte order (NULL) or network order (LOOP).
      const family = linkType === LINKTYPE_LOOP ? data.readUInt32BE(0) : data.readUInt32LE(0) < 256 ? data.readUInt32LE(0) : data.readUInt32BE(0);
      return family === 2 || [10, 24, 28, 30].includes(family) ? 4 : 'not-ip';
    }
    default:
      return null;
  }
}

function etherTypeIsIp(type: number): boolean {
  return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6;
}

/** `at`: offset of an EtherType field; VLAN tags (802.1Q, 802.1ad: type, TCI, inner type) are stepped over. */
function afterEtherType(data: Buffer, at: number): number | 'truncated' | 'not-ip' {
  let o = at;
  for (;;) {
    if (data.length < o + 2) return 'truncated';
    const type = data.readUInt16BE(o);
    if (etherTypeIsIp(type)) return o + 2;
    if (type !== ETHERTYPE_VLAN && type !== ETHERTYPE_QINQ && type !== ETHERTYPE_VLAN_OLD_QINQ) return 'not-ip';
    o += 4;
  }
}

function ipv4(data: Buffer, ip: number, cut: number): SegmentResult {
  if (data.length < ip + 20) return skip('truncated-header');
  const headerLength = ((data[ip] as number) & 0x0f) * 4;
  const totalLength = data.readUInt16BE(ip + 2);
  const fragment = data.readUInt16BE(ip + 6);
  if (data[ip + 9] !== IPPROTO_TCP) return skip('not-tcp');
  // More fragments, or an offset: not a whole segment.
  if ((fragment & 0x2000) !== 0 || (fragment & 0x1fff) !== 0) return skip('fragment');
  const src = `${data[ip + 12]}.${data[ip + 13]}.${data[ip + 14]}.${data[ip + 15]}`;
  const dst = `${data[ip + 16]}.${data[ip + 17]}.${data[ip + 18]}.${data[ip + 19]}`;
  // TSO captures may say 0; then the packet's own length stands.
  const ipEnd = totalLength === 0 ? data.length + cut : ip + totalLength;
  return tcp(data, ip + headerLength, ipEnd, src, dst);
}

function ipv6(data: Buffer, ip: number, cut: number): SegmentResult {
  if (data.length < ip + 40) return skip('truncated-header');
  const payloadLength = data.readUInt16BE(ip + 4);
  let next = data[ip + 6] as number;
  let o = ip + 40;
  while (IPV6_EXTENSIONS.has(next)) {
    if (data.length < o + 8) return skip('truncated-header');
    const length = next === 51 ? ((data[o + 1] as number) + 2) * 4 : ((data[o + 1] as number) + 1) * 8;
    next = data[o] as number;
    o += length;
  }
  if (next === IPV6_FRAGMENT) return skip('fragment');
  if (next !== IPPROTO_TCP) return skip('not-tcp');
  const ipEnd = payloadLength === 0 ? data.length + cut : ip + 40 + payloadLength;
  return tcp(data, o, ipEnd, ipv6Text(data.subarray(ip + 8, ip + 24)), ipv6Text(data.subarray(ip + 24, ip + 40)));
}

function tcp(data: Buffer, o: number, ipEnd: number, src: string, dst: string): SegmentResult {
  if (data.length < o + 20) return skip('truncated-header');
  const headerLength = ((data[o + 12] as number) >> 4) * 4;
  if (data.length < o + headerLength) return skip('truncated-header');
  const payloadStart = o + headerLength;
  // Ethernet pads short frames: the IP length says where the segment ends.
  const payloadEnd = Math.min(ipEnd, data.length);
  return {
    kind: 'tcp',
    segment: {
      src,
      dst,
      srcPort: data.readUInt16BE(o),
      dstPort: data.readUInt16BE(o + 2),
      seq: data.readUInt32BE(o + 4),
      ack: data.readUInt32BE(o + 8),
      flags: (data[o + 13] as number) & 0x3f,
      window: data.readUInt16BE(o + 14),
      payload: data.subarray(payloadStart, Math.max(payloadStart, payloadEnd)),
      payloadLength: Math.max(0, ipEnd - payloadStart),
    },
  };
}

/** RFC 5952 text: lower case, the longest run of two or more zero groups as `::`. */
export function ipv6Text(bytes: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
