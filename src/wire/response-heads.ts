import { HttpHeadParser, type HeadParseErrorCode, type HttpHeadParserOptions, type HttpResponseHead } from './http-head-parser.js';

/**
 * What one pushed chunk completed: interim (1xx) heads in order, then the
 * final head with the bytes behind it, or an error. Most chunks complete
 * nothing (`interim` empty, `end` null).
 */
export interface ResponseHeadsStep {
  interim: HttpResponseHead[];
  end:
    | { state: 'final'; head: HttpResponseHead; /** Bytes of the chunk after the final head (a subarray, may be empty). */ rest: Buffer }
    | { state: 'error'; code: HeadParseErrorCode; message: string; /** byte offset in the upstream's stream */ offset: number }
    | null;
}

/**
 * RFC 9110 section 15.2: "A client MUST be able to parse one or more 1xx
 * responses received prior to a final response". 101 is not interim here:
 * after it the connection speaks the new protocol.
 */
export function isInterimStatus(statusCode: number): boolean {
  return statusCode >= 100 && statusCode < 200 && statusCode !== 101;
}

/**
 * The response heads an upstream sends for one request: any number of
 * interim responses (100 Continue, 103 Early Hints; no bodies), then the
 * final one. Fed copies of the relayed bytes, in chunks of any size; never
 * throws. Each head gets the parser's size limit of its own.
 */
export class ResponseHeads {
  readonly #options: HttpHeadParserOptions;
  #parser: HttpHeadParser<'response'>;
  /** Bytes of the heads already complete, so an error's offset is in the whole stream. */
  #consumed = 0;
  #done = false;

  constructor(options: HttpHeadParserOptions = {}) {
    this.#options = options;
    this.#parser = new HttpHeadParser('response', options);
  }

  /** The final head (or an error) has been seen; later pushes return nothing. */
  get done(): boolean {
    return this.#done;
  }

  push(chunk: Buffer): ResponseHeadsStep {
    const step: ResponseHeadsStep = { interim: [], end: null };
    let input = chunk;
    while (!this.#done) {
      const result = this.#parser.push(input);
      if (result.state === 'incomplete') break;
      if (result.state === 'error') {
        this.#done = true;
        step.end = { state: 'error', code: result.code, message: result.message, offset: this.#consumed + result.offset };
        break;
      }
      if (!isInterimStatus(result.head.statusCode)) {
        this.#done = true;
        step.end = { state: 'final', head: result.head, rest: result.rest };
        break;
      }
      step.interim.push(result.head);
      this.#consumed += result.head.headLength;
      this.#parser = new HttpHeadParser('response', this.#options);
      input = result.rest;
      if (input.length === 0) break;
    }
    return step;
  }
}
