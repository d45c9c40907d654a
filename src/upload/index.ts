/**
 * `astro-deploy-sdk/upload`: resumable, fault-tolerant uploads to Azure block-blob SAS URLs (the
 * `dagsUploadUrl` / `bundleUploadUrl` of an Astro deploy).
 *
 * @packageDocumentation
 */
export { uploadBlockBlob, isResumableUploadError } from './upload-block-blob.js';
export { defaultJournalDir } from './journal.js';
export { BLOCK_ID_BYTES, blockDigest, decodeBlockId, encodeBlockId, type BlockDigestAlgorithm, type BlockRef } from './block-id.js';
export type {
  TryTimeoutContext,
  UploadBlockBlobOptions,
  UploadBlockBlobResult,
  UploadBlockSizeEvent,
  UploadCommittedEvent,
  UploadConcurrencyEvent,
  UploadEvent,
  UploadPhase,
  UploadProgressEvent,
  UploadResumedEvent,
  UploadRetryCause,
  UploadRetryEvent,
  UploadStartEvent,
  UploadWarningEvent,
} from './types.js';
