package desfire

import (
	"encoding/hex"
	"fmt"
	"strings"
)

func hexLower(b []byte) string          { return hex.EncodeToString(b) }
func hexUpper(b []byte) string          { return strings.ToUpper(hex.EncodeToString(b)) }
func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }
