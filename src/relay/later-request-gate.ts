import type { Side } from '../capture/events.js';
import { HttpConversation } from '../wire/http-exchange-pairing.js';
import type { HttpRequestHead } from '../wire/http-head-parser.js';
import type { ConnectionContext } from './connection-context.js';
import type { ClientGate } from './duplex-relay.js';
import { MAX_OPEN_EXCHANGES } from './http-tap.js';
import { MAX_REQUEST_HEAD_BYTES } from './request-head-gate.js';

/** A later request the gate kept from the app, complete, once every earlier exchange on the connection is. */
export interface ClaimedRequest {
  head: HttpRequestHead;
  /** Its number on the connection (the tap's numbering: every request the client sent, from 1). */
  exchange: number;
  /** What the client sent after the head (a probe's first frames): never forwarded. */
  early: Buffer;
}

/**
 * - `gating`: each request head is held until complete and looked at;
 * - `off`: for good (after a 101, past what can be parsed or pipelined): every byte goes on at once;
 * - `claimed`: a head was claimed; it and every later byte wait (the client is not read) until the earlier exchanges are complete;
 * - `taken`: handed over (takeOver), the relay no longer feeds this gate;
 * - `dropped`: the connection ended before the claimed request could be answered: the client's bytes are discarded, never forwarded.
 */
type GateState = 'gating' | 'off' | 'claimed' | 'taken' | 'dropped';

const NONE: Buffer[] = [];

/**
 * The client->upstream path of an HTTP relay with --probe-token: every
 * request head after the first (which request-head-gate.ts held) is held
 * until it is complete, so one carrying X-Wstap-Probe never reaches the app,
 * however many requests the connection carried before it (nginx's upstream
 * `keepalive` reuses its connections to wstap).
 *
 * Message boundaries come from the wire parsers (HttpConversation over both
 * directions, its own instance: the tap's parses a copy after forwarding and
 * stops on an observer fault, and the byte path cannot depend on it). Bytes
 * before a head's first byte go on at once; only a head begun and not yet
 * complete waits, and it goes on unchanged, byte for byte, the moment it is
 * complete (the app can do nothing with part of a head). A head over 64 KiB,
 * or bytes that are not HTTP, make the stream unparsable: from there
 * everything goes on unheld, as without the token (wstap answers 431/400
 * only to a first request). After an upgrade request nothing is held until
 * its answer (its frames may follow at once); after a 101, never again.
 *
 * A claimed head (claims(head): the probe header, right token or not) and
 * everything after it wait, the client unread, until every earlier request
 * has its answer complete (the pairing knows; a raw client may pipeline);
 * then takeOver() gets the head and the early bytes. If the app's side ends
 * first (an answer read until close), the claimed bytes are dropped: the
 * client got its FIN, nothing is forwarded.
 *
 * Without --probe-token there is no gate: the relay's hot path is unchanged.
 */
export class LaterRequestGate implements ClientGate {
  readonly #ctx: ConnectionContext;
  readonly #claims: (head: HttpRequestHead) => boolean;
  readonly #takeOver: (claimed: ClaimedRequest) => void;
  readonly #conversation: HttpConversation;
  #state: GateState = 'gating';
  /** Client bytes from stream offset #passedTo to #received, not passed on: a head begun, or the claimed request and what followed it. */
  #pending: Buffer[] = [];
  #passedTo = 0;
  #received = 0;
  #claim: { head: HttpRequestHead; exchange: number; offset: number } | null = null;
  #upstreamEnded = false;

  constructor(ctx: ConnectionContext, claims: (head: HttpRequestHead) => boolean, takeOver: (claimed: ClaimedRequest) => void) {
    this.#ctx = ctx;
    this.#claims = claims;
    this.#takeOver = takeOver;
    const ignore = (): void => undefined;
    this.#conversation = new HttpConversation(
      {
        request: (exchange, head, _t, _upgrade, offset) => this.#onRequest(exchange, head, offset),
        requestEnd: ignore,
        interim: ignore,
        response: ignore,
        responseBody: ignore,
        responseEnd: ignore,
        anomaly: ignore,
        switched: () => this.#stopGating(),
        // The client's stream is past HTTP (a head over 64 KiB, bytes that are not a request, a body of unknown length).
        opaque: (side) => {
          if (side === 'client') this.#stopGating();
        },
      },
      { maxHeadBytes: MAX_REQUEST_HEAD_BYTES },
    );
  }

  /** While true the relay does not read the client: a claimed request waits for the earlier answers. */
  get holdsClient(): boolean {
    return this.#state === 'claimed';
  }

  /** Nothing held and nothing more to look at, for good (after a 101, or past what can be parsed): the relay may leave the gate out. */
  get passesAll(): boolean {
    return this.#state === 'off' && this.#pending.length === 0;
  }

  client(chunk: Buffer, t: number): readonly Buffer[] {
    try {
      return this.#client(chunk, t);
    } catch (err) {
      return this.#fail(err, chunk);
    }
  }

  upstream(chunk: Buffer, t: number): void {
    if (this.#state !== 'gating' && this.#state !== 'claimed') return;
    try {
      this.#conversation.push('upstream', chunk, t);
    } catch (err) {
      this.#fail(err, null);
    }
  }

  ended(side: Side, how: 'fin' | 'rst' | 'error', t: number): void {
    if (this.#state !== 'gating' && this.#state !== 'claimed') return;
    if (side === 'upstream') this.#upstreamEnded = true;
    try {
      // An answer read until close ends with the upstream's FIN.
      this.#conversation.finish(side, t);
    } catch (err) {
      this.#fail(err, null);
      return;
    }
    // The client's FIN (half-close: it still reads) leaves its claimed request to be answered; the app's end, or a reset, does not.
    if (this.#state === 'claimed' && (side === 'upstream' || how !== 'fin')) this.#drop();
  }

  afterForward(): void {
    const claim = this.#claim;
    if (this.#state !== 'claimed' || claim === null) return;
    const conversation = this.#conversation;
    if (conversation.oldestUnanswered !== claim.exchange || conversation.answering !== null) return;
    this.#state = 'taken';
    const bytes = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending);
    this.#pending = [];
    this.#takeOver({ head: claim.head, exchange: claim.exchange, early: bytes.subarray(claim.head.headLength) });
  }

  #client(chunk: Buffer, t: number): readonly Buffer[] {
    switch (this.#state) {
      case 'off':
        return this.#pending.length === 0 ? [chunk] : [...this.#take(this.#received), chunk];
      case 'claimed':
        // Read before the pause took hold: the claimed request's early bytes.
        this.#pending.push(chunk);
        this.#received += chunk.length;
        return NONE;
      case 'taken':
      case 'dropped':
        this.#discard(chunk.length);
        return NONE;
      case 'gating':
        break;
    }
    this.#pending.push(chunk);
    this.#received += chunk.length;
    this.#conversation.push('client', chunk, t);
    const claim = this.#claim;
    if (claim !== null) {
      this.#state = 'claimed';
      const before = this.#take(claim.offset);
      // The app's side is gone (its FIN was passed to the client): nobody can answer on this connection.
      if (this.#upstreamEnded) this.#drop();
      return before;
    }
    // The push may have stopped the gating (the stream went past HTTP): TypeScript cannot see that.
    if ((this.#state as GateState) === 'off' || this.#conversation.unansweredCount > MAX_OPEN_EXCHANGES) {
      this.#state = 'off';
      return this.#take(this.#received);
    }
    const start = this.#conversation.requestHeadStart;
    // A head that began in bytes already passed on (re-read after a refused upgrade) cannot be held any more.
    return this.#take(start !== null && start >= this.#passedTo ? start : this.#received);
  }

  #onRequest(exchange: number, head: HttpRequestHead, offset: number): void {
    if (this.#state !== 'gating' || this.#claim !== null || offset < this.#passedTo) return;
    if (this.#claims(head)) this.#claim = { head, exchange, offset };
  }

  #stopGating(): void {
    if (this.#state === 'gating' && this.#claim === null) this.#state = 'off';
  }

  /** The pending bytes from #passedTo up to stream offset `upTo`, in order; the rest stays pending. */
  #take(upTo: number): readonly Buffer[] {
    if (upTo <= this.#passedTo) return NONE;
    if (upTo >= this.#received) {
      const all = this.#pending;
      this.#pending = [];
      this.#passedTo = this.#received;
      return all.length > 1 ? [Buffer.concat(all)] : all;
    }
    const out: Buffer[] = [];
    let at = this.#passedTo;
    while (at < upTo) {
      const first = this.#pending[0] as Buffer;
      if (at + first.length <= upTo) {
        out.push(first);
        this.#pending.shift();
        at += first.length;
      } else {
        out.push(first.subarray(0, upTo - at));
        this.#pending[0] = first.subarray(upTo - at);
        at = upTo;
      }
    }
    this.#passedTo = upTo;
    // A head held over several reads goes on in one write, the same bytes (and the tap sees it whole).
    return out.length > 1 ? [Buffer.concat(out)] : out;
  }

  /** The claimed request cannot be answered any more: its bytes, and every later one, are counted and never forwarded. */
  #drop(): void {
    this.#state = 'dropped';
    let bytes = 0;
    for (const b of this.#pending) bytes += b.length;
    this.#pending = [];
    this.#discard(bytes);
  }

  #discard(bytes: number): void {
    this.#ctx.bytes.fromClient += bytes;
    this.#ctx.notRelayed.fromClient += bytes;
  }

  /** A bug of ours: recorded once (observer.fault), and the connection is relayed unheld from here, as without the token (a claimed request excepted). */
  #fail(err: unknown, chunk: Buffer | null): readonly Buffer[] {
    this.#ctx.fault('later-request gate', err, 'client');
    if (this.#state === 'taken' || this.#state === 'dropped') return NONE;
    const claim = this.#claim;
    if (claim !== null) {
      // A claimed request is never forwarded, even then: what came before it goes on, it is dropped.
      const before = this.#take(claim.offset);
      this.#drop();
      return before;
    }
    this.#state = 'off';
    // Not from the client's path: a head begun stays pending, and goes on with the client's next bytes ('off').
    if (chunk === null) return NONE;
    const out = [...this.#pending];
    this.#pending = [];
    this.#passedTo = this.#received;
    if (!out.includes(chunk)) out.push(chunk);
    return out;
  }
}
