// Package vcard is a software MIFARE DESFire EV2 card: the PICC file system,
// key settings, access rights, communication modes, transactions with tear
// (power loss) semantics and the native command set, reachable through ISO
// 7816-4 wrapped APDUs exactly as a contactless card behind a PC/SC reader.
//
// A Card runs in-process for tests and behind the vpcd bridge for real
// PC/SC stacks. It starts blank like a factory card: a DES PICC master key of
// zeros, key settings 0x0F and no applications. The secure messaging is the
// card side of package desfire (EV2Session, EV1Session, the legacy
// primitives); the card never has a second copy of it.
//
// # Behaviour
//
//   - Towards PC/SC: ATR 3B 81 80 01 80 80 (or from the ATS of SetConfiguration); the reader's GET UID (FF CA 00 00
//     00) answers the 7-byte UID, or with random UID on a fresh 08 xx xx xx
//     on every power-on. Native commands come as 90 INS 00 00 [Lc data] [Le]
//     and are answered data 91 status; long commands and responses continue
//     with 0xAF frames (responses in parts of 59 bytes; GetVersion in its
//     three frames of 7, 7 and 14 bytes).
//   - ISO/IEC 7816-4 (CLA 00, iso.go): applications created with an ISO
//     file identifier and DF name (key settings 2 bit 5) and their files with
//     ISO file identifiers keep them; SELECT by DF name (the PICC's is
//     D2760000850100) and by file identifier (3F00 the PICC level), READ
//     BINARY, UPDATE BINARY and READ RECORD with the file's rights, GET
//     CHALLENGE with EXTERNAL and INTERNAL AUTHENTICATE (EV1 secure
//     messaging follows). Other instructions answer 6D 00.
//   - SetConfiguration: option 00 disables FormatPICC and turns random UID
//     on, for good; 01 sets the key and version of new applications' keys;
//     02 sets the ATS, whose historical bytes the ATR carries from the next
//     power-on.
//   - Any error status ends the authentication; error responses carry no
//     data and no MAC. A new command abandons an unfinished chain.
//   - Communication modes: the management commands use the mode of
//     desfire.CommModeIn for the session (EV1/EV2: MAC, or full for
//     GetCardUID, ChangeKey, ChangeKeySettings, SetConfiguration,
//     ChangeFileSettings; legacy 0x0A: those enciphered with a CRC16, every
//     other one plain); file commands use the file's mode when access comes
//     from the authenticated key and plain when it comes from a free (0xE)
//     access right. Without authentication everything is plain. In an EV1
//     session the management commands carry no CMAC (it only advances the
//     IV). Enciphered data's length comes from the command
//     (desfire.CommandDataLen), never from a search for the CRC.
//   - Access: ReadData/ReadRecords need read or read&write; WriteData and
//     WriteRecord write or read&write; Debit and GetValue read, write or
//     read&write (GetValue also free with the free-GetValue flag); Credit
//     read&write; LimitedCredit write or read&write.
//   - Transactions: backup data, value and record files change only on
//     CommitTransaction; AbortTransaction, SelectApplication and power loss
//     (PowerOff) drop the pending changes. Reads see committed data. Commit
//     or abort with nothing pending answers NoChanges (0x0C). Within one
//     transaction debits add up against the lower limit and WriteRecord
//     calls fill the same new record. A cyclic record file of N records
//     keeps N-1; a full one drops its oldest record on commit. A full linear
//     record file answers BoundaryError. LimitedCredit may add up to the
//     debits of the last committed transaction that had debits, once.
//   - ChangeKey: the key that may change a key follows the ChangeKey nibble
//     of the key settings; changing the authenticated key ends the session
//     and the answer has no MAC. At PICC level bits 7-6 of the key number
//     give the new key type (0x80 AES).
//   - Random data (RndB, then TI for EV2First, random UIDs) come from
//     Options.Rand, so tests can replay published exchanges byte for byte.
//
// The optional state file keeps the committed card content across restarts;
// it contains the card keys in clear and is meant for tests and demos only.
package vcard
