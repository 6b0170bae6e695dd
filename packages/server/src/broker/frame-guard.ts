import { Transform, type TransformCallback } from 'node:stream';

/**
 * Passes an MQTT byte stream through unchanged but fails as soon as a packet header announces a body larger
 * than `maxRemainingLength`. aedes' parser would otherwise buffer a packet of up to 256 MiB (even a CONNECT
 * from an unauthenticated peer) before any handler could look at it; this guard drops the connection while
 * reading the 2-5 byte fixed header, so memory stays bounded.
 *
 * @example
 * socket.pipe(new MqttFrameGuard(300 * 1024));
 */
export class MqttFrameGuard extends Transform {
  readonly #max: number;
  #state: 'type' | 'length' | 'body' = 'type';
  #length = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #remaining = 0;

  constructor(maxRemainingLength: number) {
    super();
    this.#max = maxRemainingLength;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === 'type') {
        i++;
        this.#state = 'length';
        this.#length = 0;
        this.#multiplier = 1;
        this.#lengthBytes = 0;
      } else if (this.#state === 'length') {
        const b = chunk[i++] ?? 0;
        this.#length += (b & 0x7f) * this.#multiplier;
        this.#multiplier *= 128;
        this.#lengthBytes++;
        // Later length bytes only add, so a partial length already over the cap is final.
        if (this.#length > this.#max) {
          return cb(new Error(`MQTT packet of ${this.#length} bytes exceeds the ${this.#max}-byte cap`));
        }
        if (b & 0x80) {
          if (this.#lengthBytes >= 4) return cb(new Error('malformed MQTT remaining length'));
          continue;
        }
        this.#remaining = this.#length;
        this.#state = this.#remaining > 0 ? 'body' : 'type';
      } else {
        const take = Math.min(this.#remaining, chunk.length - i);
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) this.#state = 'type';
      }
    }
    cb(null, chunk);
  }
}
