// Package cmac implements AES-CMAC (NIST SP 800-38B, RFC 4493) in pure Go.
//
// It is the reference against which the HSM's CKM_AES_CMAC is checked, and the
// MAC of DESFire secure messaging, where session keys live in memory anyway.
package cmac

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
)

// Size is the length of a full CMAC tag in bytes.
const Size = aes.BlockSize

// ErrKeySize is returned for a key that is not a valid AES key length.
var ErrKeySize = errors.New("cmac: key must be 16, 24 or 32 bytes")

// CMAC computes AES-CMAC tags with one key. It is safe for concurrent use:
// Sum keeps its state on the stack.
type CMAC struct {
	block  cipher.Block
	k1, k2 [Size]byte
}

// New prepares a CMAC for key.
func New(key []byte) (*CMAC, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrKeySize
	}
	return NewWithCipher(block), nil
}

// NewWithCipher prepares a CMAC over any 128-bit block cipher, such as an AES
// key already expanded by the caller.
func NewWithCipher(block cipher.Block) *CMAC {
	c := &CMAC{block: block}
	var l [Size]byte
	block.Encrypt(l[:], l[:])
	c.k1 = dbl(l)
	c.k2 = dbl(c.k1)
	return c
}

// Subkeys returns K1 and K2 as defined by RFC 4493 section 2.3. AN10922 key
// diversification pads its input with them.
func (c *CMAC) Subkeys() (k1, k2 [Size]byte) { return c.k1, c.k2 }

// dbl multiplies by x in GF(2^128) with the polynomial x^128+x^7+x^2+x+1.
func dbl(in [Size]byte) [Size]byte {
	var out [Size]byte
	carry := in[0] >> 7
	for i := 0; i < Size-1; i++ {
		out[i] = in[i]<<1 | in[i+1]>>7
	}
	out[Size-1] = in[Size-1]<<1 ^ (0x87 * carry)
	return out
}

// Sum returns the 16-byte CMAC of msg.
func (c *CMAC) Sum(msg []byte) [Size]byte {
	var x [Size]byte
	n := len(msg)
	// All blocks but the last go through plain CBC.
	full := n / Size
	if n > 0 && n%Size == 0 {
		full--
	}
	for i := 0; i < full; i++ {
		subtle.XORBytes(x[:], x[:], msg[i*Size:(i+1)*Size])
		c.block.Encrypt(x[:], x[:])
	}
	last := msg[full*Size:]
	var m [Size]byte
	if len(last) == Size {
		subtle.XORBytes(m[:], last, c.k1[:])
	} else {
		copy(m[:], last)
		m[len(last)] = 0x80
		subtle.XORBytes(m[:], m[:], c.k2[:])
	}
	subtle.XORBytes(x[:], x[:], m[:])
	c.block.Encrypt(x[:], x[:])
	return x
}

// Equal reports in constant time whether mac is a valid (possibly truncated,
// at least 8 bytes) prefix of the CMAC of msg.
func (c *CMAC) Equal(msg, mac []byte) bool {
	if len(mac) < 8 || len(mac) > Size {
		return false
	}
	sum := c.Sum(msg)
	return subtle.ConstantTimeCompare(sum[:len(mac)], mac) == 1
}

// Sum is a one-shot AES-CMAC of msg under key.
func Sum(key, msg []byte) ([Size]byte, error) {
	c, err := New(key)
	if err != nil {
		return [Size]byte{}, err
	}
	return c.Sum(msg), nil
}
