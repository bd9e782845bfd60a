// Package keyderiv is the software side of Loopcard's card keys: the
// AES-128 key type held in process memory (AESKey), NXP AN10922 key
// diversification in pure Go, the design's diversification input
// M = UID || AID || SystemID, and key check values. It imports neither
// PKCS#11 nor cgo, so that code holding a key outside the HSM (a terminal
// with its event debit key, a store client with a card's credit key)
// builds without them; package keys computes the same derivations inside
// the HSM and checks them against this one.
package keyderiv
