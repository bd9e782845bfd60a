// Package vcard is a software MIFARE DESFire EV2 card: the PICC file system,
// key settings, access rights, communication modes, transactions with tear
// (power loss) semantics and the native command set, reachable through ISO
// 7816-4 wrapped APDUs exactly as a contactless card behind a PC/SC reader.
//
// A Card runs in-process for tests and behind the vpcd bridge for real
// PC/SC stacks. It starts blank like a factory card: a DES PICC master key of
// zeros, key settings 0x0F and no applications. The optional state file keeps
// the card across restarts; it contains the card's keys in clear and is meant
// for tests and demos only.
package vcard
