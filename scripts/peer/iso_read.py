#!/usr/bin/python3
"""ISO/IEC 7816-4 walk of a DESFire's NFC Forum Type 4 Tag application with
pyscard (Debian's python3-pyscard): SELECT by DF name, SELECT the capability
container by file id, READ BINARY it, SELECT the NDEF file it names and READ
BINARY the NDEF message. Prints the message in hex; exits 1 on any status
other than 90 00. The reader is the first one whose name starts with argv[1]
(default: every reader)."""
import sys

from smartcard.System import readers


def main():
    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    rs = [r for r in readers() if str(r).startswith(prefix)]
    if not rs:
        sys.exit("iso_read: no reader named %r*" % prefix)
    conn = rs[0].createConnection()
    conn.connect()

    def tx(apdu, what):
        data, sw1, sw2 = conn.transmit(apdu)
        print("%s: %s %02X%02X" % (what, bytes(data).hex().upper(), sw1, sw2))
        if (sw1, sw2) != (0x90, 0x00):
            sys.exit("iso_read: %s answered %02X %02X" % (what, sw1, sw2))
        return bytes(data)

    tx([0x00, 0xA4, 0x04, 0x00, 0x07, 0xD2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x01, 0x00], "select NDEF application by DF name")
    tx([0x00, 0xA4, 0x00, 0x0C, 0x02, 0xE1, 0x03], "select capability container E103")
    cc = tx([0x00, 0xB0, 0x00, 0x00, 0x0F], "read binary capability container")
    fid = cc[9:11]
    tx([0x00, 0xA4, 0x00, 0x0C, 0x02] + list(fid), "select NDEF file " + fid.hex().upper())
    n = int.from_bytes(tx([0x00, 0xB0, 0x00, 0x00, 0x02], "read binary NLEN"), "big")
    msg = tx([0x00, 0xB0, 0x00, 0x02, n], "read binary NDEF message")
    print("ndef", msg.hex().upper())


if __name__ == "__main__":
    main()
