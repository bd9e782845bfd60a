// Package vectors embeds the public byte-exact test vectors that the tests of
// keys, personalize/desfire and personalize/vcard reproduce: AES-CMAC (RFC
// 4493), AN10922 key diversification, EV2 session keys (AN12343) and a whole
// AuthenticateEV2First exchange (AN12196). desfire.json is a verbatim copy of
// the project's shared/vectors/desfire.json; refresh it when that changes.
package vectors

import _ "embed"

// DESFireJSON is desfire.json as published.
//
//go:embed desfire.json
var DESFireJSON []byte
