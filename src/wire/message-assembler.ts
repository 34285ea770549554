/**
 * Turns the decoded frames of one direction into whole data messages, for
 * previews of uncompressed (or still-compressed) message bodies.
 *
 * Only previews are joined, never whole payloads: a message's preview is the
 * concatenation of its frames' previews, capped at `previewLimit`, and stops
 * at the first frame whose bytes are not all in its own preview (the bytes
 * after it would not be contiguous with what came before).
 *
 * Tolerant by design: the FrameDecoder already reports protocol errors, so an
 * orphan continuation frame is ignored and a new text/binary frame abandons
 * an unfinished message instead of throwing.
 */
import type { DecodedFrame } from './frame-decoder.js';

export interface AssembledMessage {
  opcode: 1 | 2;
  /** t of the first frame. */
  t: number;
  /** t of the last frame. */
  tEnd: number;
  firstFrameIndex: number;
  frames: number;
  /** Sum of the frames' payload lengths on the wire. */
  length: number;
  /** rsv1 of the first frame (permessage-deflate). */
  compressed: boolean;
  /** Concatenated frame previews, capped at previewLimit. */
  preview: Buffer;
  /** True if any byte of the message is missing from the preview. */
  previewTruncated: boolean;
}

interface Pending {
  opcode: 1 | 2;
  t: number;
  tEnd: number;
  firstFrameIndex: number;
  frames: number;
  length: number;
  compressed: boolean;
  parts: Buffer[];
  previewLength: number;
  truncated: boolean;
}

export class MessageAssembler {
  private readonly previewLimit: number;
  private pending: Pending | null = null;

  constructor(options: { previewLimit?: number } = {}) {
    const limit = options.previewLimit ?? 256;
    this.previewLimit = limit > 0 ? Math.floor(limit) : 0; // NaN and negatives -> 0
  }

  /**
   * Feed every decoded frame in order; returns the completed message when
   * `frame` is the final frame of a data message, else null. Control frames
   * return null and do not disturb the message in progress.
   */
  push(frame: DecodedFrame): AssembledMessage | null {
    const opcode = frame.opcode;
    let msg = this.pending;
    if (opcode === 0x1 || opcode === 0x2) {
      msg = {
        opcode,
        t: frame.t,
        tEnd: frame.t,
        firstFrameIndex: frame.index,
        frames: 0,
        length: 0,
        compressed: frame.rsv1,
        parts: [],
        previewLength: 0,
        truncated: false,
      };
      this.pending = msg;
    } else if (opcode !== 0x0 || msg === null) {
      // Control frames (and, defensively, reserved opcodes or an orphan continuation).
      return null;
    }

    msg.frames++;
    msg.length += frame.length;
    msg.tEnd = frame.t;
    if (!msg.truncated) {
      const take = Math.min(frame.preview.length, this.previewLimit - msg.previewLength);
      if (take > 0) {
        msg.parts.push(take === frame.preview.length ? frame.preview : frame.preview.subarray(0, take));
        msg.previewLength += take;
      }
      if (take < frame.length) msg.truncated = true;
    }

    if (!frame.fin) return null;
    this.pending = null;
    return {
      opcode: msg.opcode,
      t: msg.t,
      tEnd: msg.tEnd,
      firstFrameIndex: msg.firstFrameIndex,
      frames: msg.frames,
      length: msg.length,
      compressed: msg.compressed,
      // A single part is shared with the frame rather than copied; both are read-only by convention.
      preview: msg.parts.length === 1 ? msg.parts[0]! : Buffer.concat(msg.parts, msg.previewLength),
      previewTruncated: msg.truncated,
    };
  }

  /** A data message has started and its final frame has not arrived yet. */
  get inMessage(): boolean {
    return this.pending !== null;
  }
}
