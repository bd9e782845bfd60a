// Package handoverdb keeps the signed custody log of package handover in
// PostgreSQL (tables handover_logs, handover_entries, handover_hashes,
// handover_checkpoints and handover_store_keys) and exports it for the offline auditor.
//
// Log appends entries under the row lock of the organizer's log row, so
// indices are dense, stores the tlog stored hashes, and signs a checkpoint
// in the same transaction: an append and its checkpoint commit together or
// not at all. Export writes what an offline auditor needs (see
// docs/audit-export.md); package handover/audit verifies it.
package handoverdb
