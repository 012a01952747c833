/* tslint:disable */
/* eslint-disable */

/**
 * The core's version, so a deployed function can report exactly what it runs.
 */
export function coreVersion(): string;

/**
 * Runs the known-answer self-check and returns its report.
 */
export function selfCheck(): any;

/**
 * Verifies an XEdDSA signature made with a Signal identity key.
 *
 * `public_key` is the 33-byte serialized EC public key (0x05 || u); `signature` is 64 bytes.
 * Malformed keys or signatures verify as `false`.
 */
export function verifySignature(public_key: Uint8Array | number[], message: Uint8Array | number[], signature: Uint8Array | number[]): boolean;
