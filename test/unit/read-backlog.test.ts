import { describe, expect, it } from 'vitest';
import { ReadBacklog } from '../../src/relay/read-backlog.js';
import type { Side } from '../../src/capture/events.js';

/** One turn of the event loop: the backlog's checks run in the check phase. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function backlogWithCounters(): { backlog: ReadBacklog; bytes: Record<Side, number> } {
  const bytes: Record<Side, number> = { client: 0, upstream: 0 };
  return { backlog: new ReadBacklog((side) => bytes[side]), bytes };
}

describe('ReadBacklog: which side is behind, and since when', () => {
  it('is empty until a side is paused; then names it with the first pause time', () => {
    const { backlog } = backlogWithCounters();
    expect(backlog.snapshot()).toBeUndefined();
    backlog.paused('upstream', 100);
    expect(backlog.snapshot()).toStrictEqual({ upstream: 100 });
    backlog.paused('client', 150);
    expect(backlog.snapshot()).toStrictEqual({ client: 150, upstream: 100 });
  });

  it('stays behind after a resume while the side keeps delivering its backlog, across further pauses', async () => {
    const { backlog, bytes } = backlogWithCounters();
    backlog.paused('upstream', 100);
    backlog.resumed('upstream');
    for (let i = 0; i < 5; i++) {
      bytes.upstream += 65536;
      await turn();
      expect(backlog.snapshot()).toStrictEqual({ upstream: 100 });
    }
    // Paused again before catching up: still the same period.
    backlog.paused('upstream', 200);
    await turn();
    await turn();
    expect(backlog.snapshot()).toStrictEqual({ upstream: 100 });
    backlog.resumed('upstream');
    bytes.upstream += 1;
    await turn();
    expect(backlog.snapshot()).toStrictEqual({ upstream: 100 });
  });

  it('has caught up once a whole turn passes with nothing read from the side; a later pause starts a new period', async () => {
    const { backlog, bytes } = backlogWithCounters();
    backlog.paused('client', 100);
    backlog.resumed('client');
    bytes.client += 10;
    for (let i = 0; i < 4 && backlog.snapshot(); i++) await turn();
    expect(backlog.snapshot()).toBeUndefined();
    backlog.paused('client', 300);
    expect(backlog.snapshot()).toStrictEqual({ client: 300 });
  });

  it('ignores a resume without a pause', async () => {
    const { backlog } = backlogWithCounters();
    backlog.resumed('client');
    await turn();
    expect(backlog.snapshot()).toBeUndefined();
  });
});
