// Package desfire is the client side of the MIFARE DESFire EV1/EV2 native
// command set in ISO 7816-4 wrapping, and the secure-messaging crypto that
// both the client and a (virtual) card use.
//
// # Framing
//
// A native command is sent as the APDU 90 INS 00 00 Lc data 00 and answered
// with data 91 status. Long commands are split into frames of at most
// [MaxFrameData] data bytes: the first frame carries the command byte as INS,
// the following ones INS 0xAF. The card acknowledges every frame but the last
// with status 0xAF and no data. Long responses come back the same way: the card
// answers 91 AF with a part of the data and the client fetches the next part
// with 90 AF 00 00 00. Secure messaging is applied to the whole command and the
// whole response, before splitting and after joining.
//
// # Secure messaging
//
// [EV2Session] is EV2 secure messaging (AuthenticateEV2First/NonFirst):
// SesAuthENCKey/SesAuthMACKey from [EV2SessionKeys], command counter, TI, MACs
// truncated to their odd bytes, IVs derived from TI and the counter, ISO/IEC
// 9797-1 padding method 2. Error responses carry no MAC.
//
// [EV1Session] is EV1 secure messaging after AuthenticateAES (0xAA), and after
// AuthenticateISO (0x1A) with a DES/2K3DES key: a running CBC IV updated by
// every CMAC and every cryptogram, an 8-byte CMAC over command and response
// (also in plain mode, where the command's CMAC is computed but not sent),
// CRC32 and zero padding in full mode. In MAC mode a command carries its CMAC
// only if it has data after the header.
//
// Legacy DESFire (AuthenticateLegacy 0x0A, the factory default DES key of
// zeros) uses DES "send mode": the reader deciphers what it sends
// ([LegacySend]) and deciphers what it receives ([LegacyDecipher]); the card
// enciphers what it sends ([LegacyEncipher]) and undoes send mode on what it
// receives ([LegacyReceive]). The IV is zero at the start of every message.
// Enciphered data is data || CRC16 padded with zeros; its length is the
// command's ([CommandDataLen], [LegacyOpen]). MACed data carries
// [LegacyMAC]. Which commands are enciphered in which session is
// [CommModeIn]'s table.
// [LegacySessionKey] gives the session key of 0x0A and 0x1A authentication with
// a DES or 2K3DES key, [Session3K3DESKey] that of 0x1A with a 3K3DES key; [ISOEncrypt]/[ISODecrypt] are the running-IV 3DES CBC of
// 0x1A authentication.
//
// # Client
//
// [New] wraps a [Transmitter] (a PC/SC card, or an in-process virtual card)
// into a [Card] with one method per command. Randomness comes from
// [WithRand], logs go to [WithLogger]. The card keeps the authentication
// state and wraps every command for it: nothing before authentication, then
// legacy, EV1 or EV2 secure messaging in the mode [CommModeIn] gives (the
// file's mode for data and value commands, passed by the caller from
// [FileSettings]). A blank card is taken over with [Card.AuthenticateLegacy]
// or [Card.AuthenticateISO] and [DefaultDESKey], then [Card.ChangeKey] of key
// 0 to an AES key, which ends the session.
//
// # Card side
//
// A card implementation (personalize/vcard) uses the same sessions from the
// other end: [ParseCommandAPDU], [EV2Session.UnwrapCommand] /
// [EV2Session.WrapResponse], [EV1Session.UnwrapCommand] /
// [EV1Session.WrapResponse], the legacy ciphers, [OpenChangeKey] for the
// ChangeKey cryptogram, and [CommModeFor] for the mode table and the header
// lengths.
//
// # Errors
//
// Every status other than OK is returned as a [*StatusError]; errors.Is
// matches it against the sentinels ([ErrPermissionDenied], ...). A MAC or CRC
// that does not verify is [ErrIntegrity]. The client forgets its
// authentication after any error status, as the card does.
//
// # Secrets
//
// Keys are [Key] values: their bytes live behind an unexported pointer, they
// have no String method and are never logged or put in an error.
package desfire
