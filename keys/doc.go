// Package keys is Loopcard's access to the HSM over PKCS#11: the key
// hierarchy of docs/design.md (labels "NAME/vN", versions, rotation), key
// generation and the XOR-component key ceremony, AN10922 key
// diversification, the hq-sign signer, PIN verification values and envelope
// encryption.
//
// # HSM access
//
// Open takes an RFC 7512 URI (token=, serial= or slot-id=; module-path and
// pin-source or pin-value). crypto11 opens the module: it reference-counts
// C_Initialize/C_Finalize per module across the process, finds the token and
// logs in a persistent session; it also generates and signs with hq-sign
// when that is ECDSA P-256 (tokens without Ed25519). Every other operation
// runs on raw miekg/pkcs11 sessions from a small pool of our own, because
// crypto11 cannot create, unwrap or wrap secret keys, has no CMAC or EdDSA
// call, and panics on errors inside hash.Hash.Sum; PKCS#11 login state is
// per process, so our sessions share crypto11's login. Because crypto11
// finalises the module when its Configure fails, Open first checks the token
// and PIN on a session of its own whenever the module is already in use.
//
// # Keys
//
// Every long-term key is a token object that is private, sensitive and never
// extractable, with only the usages it needs: AES base keys sign (CMAC) only,
// the pin HMAC key signs and verifies, data-kek wraps and unwraps, hq-sign is
// an Ed25519 pair (CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA), or ECDSA P-256
// where the token lacks those. CKA_LABEL is
// "NAME/vN"; CKA_ID is "NAME/vN created=TIME" (SoftHSM2 2.6.1 cannot read
// CKA_START_DATE back). Version 0 in a Label means the newest version; older
// versions stay usable. Finding the newest version lists the token, so it is
// cached for Options.ResolveTTL (DefaultResolveTTL, 5 s): a version created
// by another process is used at most that long after it appeared; this
// process's own Init, Rotate and Import, a stale handle or a vanished object
// refresh it at once. Object handles are cached per label.
//
// Outside the hierarchy, GenerateSigningKey makes an Ed25519 key pair under
// a label of the caller's choice in any token (a store's key in the store's
// own token) and SigningKey opens it; both give the same Signer as hq-sign.
//
// A key check value (KCV) is the first 3 bytes, in upper-case hex, of
// AES-CMAC(key, 16 zero bytes) for AES keys and HMAC-SHA256(key, 16 zero
// bytes) for the pin key, computed in the HSM; for hq-sign it is the first 3
// bytes of SHA-256 of the public key's PKIX (SubjectPublicKeyInfo) DER. A
// wrap-only data-kek cannot compute one in the HSM, so its KCV is shown only
// at import.
//
// # Diversification
//
// AN10922 AES-128 diversification is CMAC(base, 0x01 || M) with a padding
// forced to 32 bytes. The HSM's CKM_AES_CMAC equals it exactly when M is 16
// to 31 bytes; other lengths are refused with ErrDiversificationInput. AN10922
// is the pure-Go reference the tests compare the HSM with, and what holders
// of an event debit key use.
//
// # Secrets in memory
//
// AESKey, Component, PIN and internal secret buffers keep their bytes behind
// a pointer in an unexported field and have no String method: fmt, slog and
// JSON print an address or nothing. Errors and audit records carry labels,
// lengths and KCVs only.
package keys
