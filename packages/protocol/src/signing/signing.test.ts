import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  canonicalJson,
  generateSigningKeyPair,
  keyIdOf,
  publicKeyFromPrivate,
  signDocument,
  verifyDocument,
} from './index.ts';
import { OutpostError } from '../errors/index.ts';

const doc = { name: 'mnist', version: '1.0.0', nested: { b: 2, a: [1, 'x', null] } };

describe('canonicalJson', () => {
  test('sorts keys at every depth and drops undefined', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: undefined, c: [2, { z: 1, y: 0 }] } }),
      '{"a":{"c":[2,{"y":0,"z":1}]},"b":1}',
    );
  });
  test('is independent of key insertion order (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        assert.equal(canonicalJson(obj), canonicalJson(reversed));
        // And it is valid JSON describing the same value.
        assert.deepEqual(JSON.parse(canonicalJson(obj)), JSON.parse(JSON.stringify(obj)));
      }),
    );
  });
  test('rejects non-finite numbers', () => {
    assert.throws(
      () => canonicalJson({ x: Number.NaN }),
      (e) => e instanceof OutpostError && e.code === 'VALIDATION_FAILED',
    );
  });
});

describe('Ed25519 envelopes', () => {
  const keys = generateSigningKeyPair();
  const other = generateSigningKeyPair();

  test('sign then verify with the trusted key returns its key id', () => {
    const env = signDocument(doc, keys.privateKeyPem);
    assert.equal(env.signatures[0]?.keyid, keys.keyid);
    assert.deepEqual(verifyDocument(env, [keys.publicKeyPem]), [keys.keyid]);
    assert.equal(keyIdOf(publicKeyFromPrivate(keys.privateKeyPem)), keys.keyid);
  });

  test('a changed payload fails with SIGNATURE_INVALID', () => {
    const env = signDocument(doc, keys.privateKeyPem);
    const tampered = { ...env, signed: { ...env.signed, version: '1.0.1' } };
    assert.throws(
      () => verifyDocument(tampered, [keys.publicKeyPem]),
      (e) => (e as OutpostError).code === 'SIGNATURE_INVALID',
    );
  });

  test('a signature by an untrusted key fails with UNKNOWN_KEY', () => {
    const env = signDocument(doc, other.privateKeyPem);
    assert.throws(
      () => verifyDocument(env, [keys.publicKeyPem]),
      (e) => (e as OutpostError).code === 'UNKNOWN_KEY',
    );
  });

  test('a duplicated signature counts once towards the threshold', () => {
    const env = signDocument(doc, keys.privateKeyPem);
    const dup = { ...env, signatures: [env.signatures[0]!, env.signatures[0]!] };
    assert.throws(
      () => verifyDocument(dup, [keys.publicKeyPem, other.publicKeyPem], 2),
      (e) => (e as OutpostError).code === 'SIGNATURE_INVALID',
    );
    const both = {
      ...env,
      signatures: [...env.signatures, ...signDocument(doc, other.privateKeyPem).signatures],
    };
    assert.equal(verifyDocument(both, [keys.publicKeyPem, other.publicKeyPem], 2).length, 2);
  });

  test('a bad extra signature does not spoil a met threshold', () => {
    const env = signDocument(doc, keys.privateKeyPem);
    const forged = { keyid: other.keyid, sig: Buffer.alloc(64, 7).toString('base64') };
    assert.deepEqual(
      verifyDocument({ ...env, signatures: [...env.signatures, forged] }, [
        keys.publicKeyPem,
        other.publicKeyPem,
      ]),
      [keys.keyid],
    );
  });

  test('garbage key material is a VALIDATION_FAILED error that does not echo the input', () => {
    const secretish = '-----BEGIN PRIVATE KEY-----\nnot-a-key-SECRET\n-----END PRIVATE KEY-----';
    assert.throws(
      () => signDocument(doc, secretish),
      (e) => e instanceof OutpostError && e.code === 'VALIDATION_FAILED' && !e.message.includes('SECRET'),
    );
  });
});
