import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWriteFileSync } from '@outpost/common';
import { OutpostError, generateSigningKeyPair, keyIdOf, publicKeyFromPrivate } from '@outpost/protocol';

/**
 * Publisher key files: `<name>.key` (PKCS#8 PEM, mode 0600) and `<name>.pub` (SPKI PEM).
 *
 * @example
 * const { keyid } = writeKeyPair('./keys', 'publisher');
 */
export function writeKeyPair(dir: string, name = 'publisher', overwrite = false) {
  mkdirSync(dir, { recursive: true });
  const keyPath = join(dir, `${name}.key`);
  const pubPath = join(dir, `${name}.pub`);
  if (!overwrite) {
    try {
      readFileSync(keyPath);
      throw new OutpostError('CONFLICT', `${keyPath} exists; pass --force to replace it`);
    } catch (err) {
      if (err instanceof OutpostError) throw err;
    }
  }
  const kp = generateSigningKeyPair();
  atomicWriteFileSync(keyPath, kp.privateKeyPem, 0o600);
  atomicWriteFileSync(pubPath, kp.publicKeyPem, 0o644);
  return { keyid: kp.keyid, keyPath, pubPath };
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new OutpostError(
      'VALIDATION_FAILED',
      `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code}`,
    );
  }
}

export function readPrivateKey(path: string): { pem: string; keyid: string } {
  const pem = readText(path, 'private key');
  return { pem, keyid: keyIdOf(publicKeyFromPrivate(pem)) };
}

export function readPublicKeys(paths: readonly string[]): string[] {
  return paths.map((p) => {
    const pem = readText(p, 'public key');
    keyIdOf(pem); // validates that it is an Ed25519 public key
    return pem;
  });
}
