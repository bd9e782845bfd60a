package desfire

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/subtle"
	"fmt"
	"hash/crc32"

	"github.com/loopcard/loopcard/keys/cmac"
)

// CRC32 is the DESFire CRC32: reflected polynomial 0xEDB88320, preset
// 0xFFFFFFFF, no final XOR. It is sent little-endian.
func CRC32(data []byte) uint32 { return ^crc32.ChecksumIEEE(data) }

// appendCRC32 appends the little-endian DESFire CRC32 of data to dst.
func appendCRC32(dst, data []byte) []byte {
	c := CRC32(data)
	return append(dst, byte(c), byte(c>>8), byte(c>>16), byte(c>>24))
}

// CRC16 is the ISO/IEC 14443-3 type A CRC (preset 0x6363, reflected
// polynomial 0x8408) used by legacy DESFire secure messaging; little-endian
// on the wire.
func CRC16(data []byte) uint16 {
	crc := uint16(0x6363)
	for _, b := range data {
		b ^= byte(crc)
		b ^= b << 4
		crc = crc>>8 ^ uint16(b)<<8 ^ uint16(b)<<3 ^ uint16(b)>>4
	}
	return crc
}

func appendCRC16(dst, data []byte) []byte {
	c := CRC16(data)
	return append(dst, byte(c), byte(c>>8))
}

// padM2 pads with ISO/IEC 9797-1 method 2: 0x80 then zeros, always adding
// at least one byte.
func padM2(data []byte, bs int) []byte {
	n := (len(data)/bs + 1) * bs
	out := make([]byte, n)
	copy(out, data)
	out[len(data)] = 0x80
	return out
}

// unpadM2 removes method-2 padding.
func unpadM2(data []byte, bs int) ([]byte, error) {
	if len(data) == 0 || len(data)%bs != 0 {
		return nil, fmt.Errorf("%w: padding", ErrIntegrity)
	}
	for i := len(data) - 1; i >= len(data)-bs; i-- {
		switch data[i] {
		case 0x00:
			continue
		case 0x80:
			return data[:i], nil
		}
		break
	}
	return nil, fmt.Errorf("%w: padding", ErrIntegrity)
}

// padZero pads with zeros to a multiple of bs (nothing if already aligned).
func padZero(data []byte, bs int) []byte {
	n := (len(data) + bs - 1) / bs * bs
	out := make([]byte, n)
	copy(out, data)
	return out
}

// cbcEncrypt encrypts data (a multiple of the block size) in CBC mode and
// returns the ciphertext; iv is not modified.
func cbcEncrypt(b cipher.Block, iv, data []byte) []byte {
	out := make([]byte, len(data))
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, data)
	return out
}

func cbcDecrypt(b cipher.Block, iv, data []byte) []byte {
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, data)
	return out
}

func newAES(key []byte) (cipher.Block, error) {
	if len(key) != 16 {
		return nil, fmt.Errorf("%w: AES key must be 16 bytes, got %d", ErrMalformed, len(key))
	}
	return aes.NewCipher(key)
}

// newDESBlock returns a DES cipher for an 8-byte key, 2K3DES for a 16-byte key
// (which is single DES when both halves are equal) and 3K3DES for 24 bytes.
// DESFire keeps the key version in the parity bits, so they are ignored.
func newDESBlock(key []byte) (cipher.Block, error) {
	switch len(key) {
	case 8:
		return des.NewCipher(key)
	case 16:
		k := make([]byte, 24)
		copy(k, key)
		copy(k[16:], key[:8])
		return des.NewTripleDESCipher(k)
	case 24:
		return des.NewTripleDESCipher(key)
	}
	return nil, fmt.Errorf("%w: DES key must be 8, 16 or 24 bytes, got %d", ErrMalformed, len(key))
}

// rotl1 rotates left by one byte.
func rotl1(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b[1:])
	out[len(b)-1] = b[0]
	return out
}

// cmacIV computes the CMAC of msg with a running IV as the CBC start value,
// as EV1 secure messaging does (standard CMAC is the case iv = 0). keys/cmac
// has no IV input, so only its subkeys are used here for 16-byte blocks; DES
// blocks use the 64-bit constant 0x1B.
type ivMAC struct {
	block  cipher.Block
	k1, k2 []byte
}

func newIVMAC(b cipher.Block) *ivMAC {
	m := &ivMAC{block: b}
	if b.BlockSize() == 16 {
		k1, k2 := cmac.NewWithCipher(b).Subkeys()
		m.k1, m.k2 = k1[:], k2[:]
		return m
	}
	l := make([]byte, b.BlockSize())
	b.Encrypt(l, l)
	m.k1 = dbl64(l)
	m.k2 = dbl64(m.k1)
	return m
}

func dbl64(in []byte) []byte {
	out := make([]byte, len(in))
	for i := 0; i < len(in)-1; i++ {
		out[i] = in[i]<<1 | in[i+1]>>7
	}
	out[len(in)-1] = in[len(in)-1] << 1
	if in[0]&0x80 != 0 {
		out[len(in)-1] ^= 0x1B
	}
	return out
}

// sum returns the full CMAC of msg chained from iv.
func (m *ivMAC) sum(iv, msg []byte) []byte {
	bs := m.block.BlockSize()
	var last []byte
	var head []byte
	if len(msg) > 0 && len(msg)%bs == 0 {
		head, last = msg[:len(msg)-bs], append([]byte(nil), msg[len(msg)-bs:]...)
		subtle.XORBytes(last, last, m.k1)
	} else {
		n := len(msg) / bs * bs
		head = msg[:n]
		last = make([]byte, bs)
		copy(last, msg[n:])
		last[len(msg)-n] = 0x80
		subtle.XORBytes(last, last, m.k2)
	}
	x := append([]byte(nil), iv...)
	if len(head) > 0 {
		ct := cbcEncrypt(m.block, iv, head)
		x = ct[len(ct)-bs:]
	}
	subtle.XORBytes(x, x, last)
	m.block.Encrypt(x, x)
	return x
}
