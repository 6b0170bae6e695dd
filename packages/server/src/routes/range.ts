/** A byte range, both ends inclusive, within a file of known size. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Interprets a `Range` header for a representation of `size` bytes (RFC 9110 §14). Only a single
 * `bytes=` range is served; anything else (no header, other units, several ranges, bad syntax) returns
 * null, meaning "send the whole file", which the RFC allows. A syntactically valid range that starts past
 * the end returns `unsatisfiable` (416).
 *
 * @example
 * parseRange('bytes=100-', 1000); // { start: 100, end: 999 }
 * parseRange('bytes=-10', 1000);  // { start: 990, end: 999 }
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (header === undefined) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return null;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return null;
  if (a === '') {
    // Suffix range: the last N bytes.
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const last = b === '' ? Infinity : Number(b);
  if (!Number.isSafeInteger(start) || (b !== '' && !Number.isSafeInteger(last)) || last < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(last, size - 1) };
}
