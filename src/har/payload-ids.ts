/**
 * With --payloads none a HAR leaves ping and pong data out, yet a pong
 * answers the ping whose data it echoes (RFC 6455 5.5.3): each distinct data
 * of a connection gets an id instead (`_wstap.frames[i].payloadId`), equal
 * data equal id, so `wstap view FILE.har` pairs them as the live fold did.
 *
 * Bounded: past MAX_KEPT ids, those of data no waiting ping carries are
 * forgotten. A pong only has to match a waiting ping, and at most 32 pings
 * wait (16 a side), so what is forgotten is never needed; a new id is never
 * an old one's.
 */
const MAX_KEPT = 64;

export class PayloadIds {
  readonly #ids = new Map<string, number>();
  #next = 0;

  /** The id of `data`; `isWaiting` says whether a ping with some data still waits for its pong. */
  idOf(data: string, isWaiting: (data: string) => boolean): number {
    let id = this.#ids.get(data);
    if (id === undefined) {
      id = this.#next++;
      this.#ids.set(data, id);
    }
    if (this.#ids.size > MAX_KEPT) {
      for (const kept of this.#ids.keys()) if (!isWaiting(kept)) this.#ids.delete(kept);
    }
    return id;
  }
}
