import os from 'node:os';
import { endpointText, type ListenEndpoint } from '../relay/listen-endpoint.js';
import { UsageError } from './usage-error.js';

/** --instance, or the host's name and the address as --listen gave it. A bad name is quoted as JSON: its control characters never reach the terminal raw. */
export function instanceOf(given: unknown, listen: ListenEndpoint): string {
  const name = typeof given === 'string' ? given : `${os.hostname()}/${endpointText(listen)}`;
  if (!/^[^\x00-\x1f\x7f]{1,200}$/.test(name)) throw new UsageError(`--instance ${JSON.stringify(name)} must be 1 to 200 characters, none of them control characters`);
  return name;
}
