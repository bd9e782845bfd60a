// Package handover is the signed custody log of Loopcard cards: an
// append-only RFC 6962 Merkle log per organizer, kept in PostgreSQL by
// package handoverdb, whose
// entries say who had which cards (batch issued, handed over HQ -> store,
// received by the store, card sold, returned, voided, destroyed, store key
// enrolled), each signed by whoever acts, and whose tree heads are C2SP
// tlog-checkpoint signed notes signed by hq-sign after every append.
//
// # Entries
//
// An Entry is canonical JSON: the exact bytes json.Marshal makes of the
// Entry struct (fixed field order, no insignificant space, UTC times), with
// a version field "v". ParseEntry refuses any other spelling of the same
// entry, so an entry has exactly one byte form; those bytes are the Merkle
// leaf (tlog.RecordHash).
//
// An entry is signed by its actor in one of two ways:
//   - itself: "sig" is Ed25519 over SignedMessage(entry);
//   - sealed: "sig" is empty and the entry is one of the Covers entries
//     right before a TypeSeal entry by the same signer, whose "hash" is
//     SealHash of their leaf hashes and which is itself signed. High-volume
//     card events are sealed, so that verifying a million entries needs a
//     few thousand signature checks, not a million (one Ed25519 check costs
//     about 0.1 ms on this machine's cores).
//
// Signers are named as signed-note keys are: "NAME+HASH" (KeyID), where
// HASH is the first 4 bytes, in hex, of SHA-256(NAME || "\n" || 0x01 ||
// public key). HQ signs with hq-sign (the same key signs checkpoints); each
// store signs with its own Ed25519 key, enrolled in the log by HQ
// (TypeKeyEnrolled), kept either in a 0600 file (GenerateKeyFile,
// OpenKeyFile) or non-extractable in the store's own PKCS#11 token
// (keys.HSM.GenerateSigningKey and SigningKey, wrapped by NewSigner).
//
// # Entry types
//
// Kinds is the one table of entry types: per type the fields it carries
// and requires, who may sign it (HQ, the store it names, or either), the
// API route through which a store records it, and its CLI name and help.
// Validate, Checker, Tally, the API's store routes, the CLI and the table
// of docs/audit-export.md read it.
//
// # Log
//
// This package is the log's format and rules: entries, signers, the
// Checker and Tally, the Merkle tree, checkpoints and the names of an
// export. It needs no database, so the offline auditor (package audit)
// and a store client build without one; package handoverdb appends to the
// log in PostgreSQL and exports it.
package handover
