/**
 * Block IDs that describe their own bytes.
 *
 * An ID is 64 raw bytes (88 base64 characters, the width astro-cli's Go SDK uses, so blocks it left
 * uncommitted on the same blob do not trigger the "same width" rule):
 *
 *   0..3   magic `ADSK`
 *   4      format version (1)
 *   5      digest algorithm: 0 = MD5, 1 = SHA-256 truncated to 16 bytes
 *   6..11  offset of the block in the blob, unsigned 48-bit big-endian
 *   12..15 length of the block, unsigned 32-bit big-endian
 *   16..31 digest of the block's bytes
 *   32..63 zero
 *
 * Because the ID names offset, length and content, the same ID always denotes the same bytes (a
 * re-send is idempotent), blocks can be cut to any size as the link changes, and a later run can
 * tell from the ID alone (from its journal or from Get Block List) whether a staged block still
 * matches the source: it re-hashes that range and compares.
 */

import { createHash } from 'node:crypto';

const MAGIC = Buffer.from('ADSK', 'latin1');
const ALGORITHMS = ['md5', 'sha256'] as const;

/** Digest named in a block ID: MD5 (also sent as `Content-MD5`) or SHA-256 (faster, when MD5 is not sent). */
export type BlockDigestAlgorithm = (typeof ALGORITHMS)[number];

/** The 16-byte digest of a block that goes into its ID. */
export function blockDigest(bytes: Uint8Array, algorithm: BlockDigestAlgorithm): Buffer {
  return toBlockDigest(createHash(algorithm).update(bytes).digest(), algorithm);
}

/** The block-ID form (16 bytes) of a full `algorithm` digest. */
export function toBlockDigest(full: Buffer, algorithm: BlockDigestAlgorithm): Buffer {
  return algorithm === 'md5' ? full : full.subarray(0, 16);
}
const FORMAT_VERSION = 1;

/** Decoded width of every block ID, in bytes. */
export const BLOCK_ID_BYTES = 64;

/** The parts of a block ID. */
export interface BlockRef {
  /** Offset of the block in the blob, in bytes. */
  offset: number;
  /** Length of the block, in bytes. */
  length: number;
  /** Digest of the block (16 bytes), see {@link blockDigest}. */
  digest: Buffer;
  /** Algorithm of `digest`. */
  algorithm: BlockDigestAlgorithm;
}

/** Base64 block ID of a block. */
export function encodeBlockId(ref: BlockRef): string {
  const buf = Buffer.alloc(BLOCK_ID_BYTES);
  MAGIC.copy(buf, 0);
  buf[4] = FORMAT_VERSION;
  buf[5] = ALGORITHMS.indexOf(ref.algorithm);
  buf.writeUIntBE(ref.offset, 6, 6);
  buf.writeUInt32BE(ref.length, 12);
  ref.digest.copy(buf, 16, 0, 16);
  return buf.toString('base64');
}

/** Parse a block ID written by {@link encodeBlockId}; undefined for any other ID. */
export function decodeBlockId(id: string): BlockRef | undefined {
  if (id.length !== 88) return undefined;
  const buf = Buffer.from(id, 'base64');
  if (buf.length !== BLOCK_ID_BYTES || !buf.subarray(0, 4).equals(MAGIC) || buf[4] !== FORMAT_VERSION) return undefined;
  const algorithm = ALGORITHMS[buf[5]!];
  if (!algorithm || buf.toString('base64') !== id) return undefined;
  return {
    offset: buf.readUIntBE(6, 6),
    length: buf.readUInt32BE(12),
    digest: Buffer.from(buf.subarray(16, 32)),
    algorithm,
  };
}
