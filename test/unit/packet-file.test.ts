import { describe, expect, it } from 'vitest';
import { PacketFileError, PacketFileParser, packetFileFormat, type CapturedPacket, type InterfaceStatistics } from '../../src/pcap/packet-file.js';
import { ipv6Text, tcpSegmentOf, type TcpSegment } from '../../src/pcap/tcp-segment.js';
import { LINK_TYPE_NUMBER, TcpConversation, frameOf, pcapFile, pcapngFile, tcpPacket, type LinkType } from '../support/pcap-builder.js';

function parse(file: Buffer, chunkSize = file.length): { packets: CapturedPacket[]; stats: InterfaceStatistics[]; cut: number } {
  const packets: CapturedPacket[] = [];
  const stats: InterfaceStatistics[] = [];
  const parser = new PacketFileParser({ packet: (p) => packets.push({ ...p, data: Buffer.from(p.data) }), statistics: (s) => stats.push(s) });
  for (let o = 0; o < file.length; o += chunkSize) parser.push(file.subarray(o, o + chunkSize));
  return { packets, stats, cut: parser.end() };
}

function segmentOf(p: CapturedPacket): TcpSegment {
  const result = tcpSegmentOf(p.linkType, p.data, p.originalLength);
  if (result.kind !== 'tcp') throw new Error(`packet ${p.number}: ${result.reason}`);
  return result.segment;
}

const client = { address: '10.0.0.1', port: 40000 };
const server = { address: '10.0.0.2', port: 8065 };

function conversation(): TcpConversation {
  const c = new TcpConversation(client, server, 1_700_000_000_123.456);
  c.handshake();
  c.send('client', 'hello');
  c.send('server', 'world!');
  return c;
}

describe('classic pcap', () => {
  for (const [name, options] of [
    ['microseconds, little-endian', {}],
    ['nanoseconds, little-endian', { nano: true }],
    ['microseconds, big-endian', { bigEndian: true }],
    ['nanoseconds, big-endian', { nano: true, bigEndian: true }],
  ] as const) {
    it(`${name}: every packet, its time to the microsecond, its TCP segment`, () => {
      const c = conversation();
      const { packets, cut } = parse(pcapFile(c.packets, options));
      expect(cut).toBe(0);
      expect(packets.map((p) => p.number)).toEqual([1, 2, 3, 4, 5]);
      expect(packets.map((p) => p.t)).toEqual(c.packets.map((p) => Math.round(p.t * 1000) / 1000));
      const data = segmentOf(packets[3] as CapturedPacket);
      expect(data).toMatchObject({ src: '10.0.0.1', srcPort: 40000, dst: '10.0.0.2', dstPort: 8065, seq: 1001 });
      expect(data.payload.toString()).toBe('hello');
    });
  }

  it('reads the same packets whatever the chunk boundaries (one byte at a time)', () => {
    const file = pcapFile(conversation().packets);
    expect(parse(file, 1).packets.map((p) => p.data.toString('hex'))).toEqual(parse(file).packets.map((p) => p.data.toString('hex')));
  });

  it('says how many bytes of a record a file cut short holds, and reads the packets before it', () => {
    const file = pcapFile(conversation().packets);
    const { packets, cut } = parse(file.subarray(0, file.length - 3));
    expect(packets).toHaveLength(4);
    expect(cut).toBeGreaterThan(0);
  });

  it('refuses a file that is neither pcap nor pcapng, saying where', () => {
    expect(packetFileFormat(Buffer.from('{"format":"wstap-capture"}'))).toBeNull();
    expect(() => parse(Buffer.from('{"format":"wstap-capture","version":1}\n'))).toThrow(PacketFileError);
    expect(() => parse(Buffer.from('{"format":"wstap-capture","version":1}\n'))).toThrow(/not a pcap or pcapng file.*at byte 0/);
  });

  it('refuses a damaged record length instead of allocating it', () => {
    const file = pcapFile(conversation().packets);
    file.writeUInt32LE(0x7fffffff, 24 + 8);
    expect(() => parse(file)).toThrow(/claims 2147483647 bytes: the file is damaged \(at byte 24\)/);
  });
});

describe('pcapng', () => {
  it('two interfaces with their own link types and timestamp resolutions; drop counts from the statistics blocks', () => {
    const a = conversation();
    const b = new TcpConversation({ address: 'fd00::1', port: 50000 }, { address: 'fd00::2', port: 443 }, 1_700_000_000_200.5);
    b.handshake();
    const file = pcapngFile(
      [{ link: 'ethernet' }, { link: 'sll2', resolutionDigits: 9 }],
      [...a.packets.map((packet) => ({ iface: 0, packet })), ...b.packets.map((packet) => ({ iface: 1, packet }))],
      [null, 7],
    );
    expect(packetFileFormat(file)).toBe('pcapng');
    const { packets, stats } = parse(file, 7);
    expect(packets).toHaveLength(8);
    expect(packets.map((p) => p.linkType)).toEqual([1, 1, 1, 1, 1, 276, 276, 276]);
    expect(packets[5]?.t).toBe(1_700_000_000_200.5);
    expect(packets[0]?.t).toBe(1_700_000_000_123.456);
    expect(segmentOf(packets[5] as CapturedPacket)).toMatchObject({ src: 'fd00::1', dst: 'fd00::2', dstPort: 443, flags: 0x02 });
    expect(stats).toEqual([{ interfaceId: 1, t: b.packets.at(-1)?.t, received: null, dropped: 7 }]);
  });
});

describe('link layers', () => {
  const ip = tcpPacket(client, server, 1234, 5678, 0x18, Buffer.from('payload'));
  for (const link of ['ethernet', 'ethernet-vlan', 'sll', 'sll2', 'null', 'raw'] as LinkType[]) {
    it(`${link}: the TCP segment inside`, () => {
      const frame = frameOf(link, ip);
      const result = tcpSegmentOf(LINK_TYPE_NUMBER[link], frame, frame.length);
      expect(result).toMatchObject({ kind: 'tcp', segment: { src: '10.0.0.1', srcPort: 40000, dst: '10.0.0.2', dstPort: 8065, seq: 1234, ack: 5678, flags: 0x18 } });
      if (result.kind === 'tcp') expect(result.segment.payload.toString()).toBe('payload');
    });
  }

  it('Ethernet padding is not payload (the IP length says where the packet ends)', () => {
    const frame = frameOf('ethernet', tcpPacket(client, server, 1, 2, 0x10));
    expect(frame.length).toBe(60);
    expect(tcpSegmentOf(1, frame, 60)).toMatchObject({ kind: 'tcp', segment: { payloadLength: 0 } });
  });

  it('a payload cut by the snap length: what is held, and its length on the wire', () => {
    const frame = frameOf('ethernet', ip);
    const result = tcpSegmentOf(1, frame.subarray(0, frame.length - 3), frame.length);
    expect(result).toMatchObject({ kind: 'tcp', segment: { payloadLength: 7 } });
    if (result.kind === 'tcp') expect(result.segment.payload.toString()).toBe('payl');
  });

  it('a header cut by the snap length, UDP and an unknown link type are skipped with their reason', () => {
    const frame = frameOf('ethernet', ip);
    expect(tcpSegmentOf(1, frame.subarray(0, 30), frame.length)).toEqual({ kind: 'skip', reason: 'truncated-header' });
    const udp = Buffer.from(ip);
    udp[9] = 17;
    expect(tcpSegmentOf(101, udp, udp.length)).toEqual({ kind: 'skip', reason: 'not-tcp' });
    expect(tcpSegmentOf(147, ip, ip.length)).toEqual({ kind: 'skip', reason: 'unknown-link-type' });
  });

  it('IPv6 addresses in RFC 5952 form', () => {
    const bytes = (groups: number[]): Buffer => Buffer.concat(groups.map((g) => Buffer.from([g >> 8, g & 0xff])));
    expect(ipv6Text(bytes([0, 0, 0, 0, 0, 0, 0, 1]))).toBe('::1');
    expect(ipv6Text(bytes([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]))).toBe('2001:db8::1:0:0:1');
    expect(ipv6Text(bytes([0xfe80, 0, 0, 0, 0x1, 0x2, 0x3, 0x4]))).toBe('fe80::1:2:3:4');
    expect(ipv6Text(bytes([1, 2, 3, 4, 5, 6, 7, 8]))).toBe('1:2:3:4:5:6:7:8');
  });
});
