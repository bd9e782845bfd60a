// Package tlsca makes the local certificate authority of an embedded
// Loopcard installation: an ECDSA P-256 CA and a server certificate for
// localhost and 127.0.0.1 signed by it, kept as PEM files under
// DATA_DIR/tls (private keys 0600), and client certificates for terminals
// that use mutual TLS.
package tlsca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names under the TLS directory.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

// Lifetimes of what Ensure makes.
const (
	caLifetime     = 10 * 365 * 24 * time.Hour
	serverLifetime = 397 * 24 * time.Hour
)

// CA is a loaded local certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	// Dir is where its files are.
	Dir string
}

// Ensure loads the CA and server certificate under dir, creating the
// directory, CA and server certificate when missing (created reports that).
// A server certificate that expires within 30 days is renewed.
func Ensure(dir string, hosts []string) (ca *CA, created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("tlsca: %w", err)
	}
	ca, err = load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		ca, err = create(dir)
		created = true
	}
	if err != nil {
		return nil, false, err
	}
	if needServer(dir) {
		if err := ca.writeServer(hosts); err != nil {
			return nil, false, err
		}
		created = true
	}
	return ca, created, nil
}

func load(dir string) (*CA, error) {
	cert, err := readCert(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("tlsca: CA key: %w", err)
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		return nil, fmt.Errorf("tlsca: CA key file is not PEM")
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tlsca: CA key: %w", err)
	}
	return &CA{Cert: cert, key: k, Dir: dir}, nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("tlsca: %s is not a PEM certificate", path)
	}
	return x509.ParseCertificate(blk.Bytes)
}

func needServer(dir string) bool {
	c, err := readCert(filepath.Join(dir, ServerFile))
	if err != nil {
		return true
	}
	if _, err := os.Stat(filepath.Join(dir, ServerKeyFile)); err != nil {
		return true
	}
	return time.Until(c.NotAfter) < 30*24*time.Hour
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func create(dir string) (*CA, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsca: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, fmt.Errorf("tlsca: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "Loopcard local CA", Organization: []string{"Loopcard"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, fmt.Errorf("tlsca: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsca: %w", err)
	}
	if err := writeKey(filepath.Join(dir, CAKeyFile), k); err != nil {
		return nil, err
	}
	if err := writePEM(filepath.Join(dir, CAFile), "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, key: k, Dir: dir}, nil
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

// writePEM writes through a temporary file and a rename, so a crash never
// leaves half a file.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("tlsca: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	return nil
}

func (ca *CA) issue(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	sn, err := serial()
	if err != nil {
		return nil, fmt.Errorf("tlsca: %w", err)
	}
	tmpl.SerialNumber = sn
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("tlsca: %w", err)
	}
	return der, nil
}

func (ca *CA) writeServer(hosts []string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tlsca: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "loopcard server"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(serverLifetime),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range append([]string{"localhost", "127.0.0.1"}, hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := ca.issue(tmpl, &k.PublicKey)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(ca.Dir, ServerKeyFile), k); err != nil {
		return err
	}
	return writePEM(filepath.Join(ca.Dir, ServerFile), "CERTIFICATE", der, 0o644)
}

// ServerCertificate loads the server certificate and key written by Ensure.
func (ca *CA) ServerCertificate() (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(filepath.Join(ca.Dir, ServerFile), filepath.Join(ca.Dir, ServerKeyFile))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsca: server certificate: %w", err)
	}
	return c, nil
}

// Pool returns a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// ClientCertificate issues a client certificate whose common name is cn
// (a terminal's key id) for key pub, valid for ttl.
func (ca *CA) ClientCertificate(cn string, pub crypto.PublicKey, ttl time.Duration) (*x509.Certificate, error) {
	now := time.Now()
	der, err := ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    now.Add(ttl),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, pub)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
