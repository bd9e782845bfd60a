package desfire

import "fmt"

// AID is a 3-byte application identifier; it is sent least significant
// byte first. AID 0 is the PICC level.
type AID uint32

func (a AID) bytes() []byte { return []byte{byte(a), byte(a >> 8), byte(a >> 16)} }

func le24(v int) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16)} }

// Uint24 reads the 3-byte little-endian numbers of DESFire's wire format
// (file sizes, record counts, offsets).
func Uint24(b []byte) int { return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 }

// Version is the answer to GetVersion.
type Version struct {
	Hardware       [7]byte // vendor, type, subtype, major, minor, storage size, protocol
	Software       [7]byte
	UID            [7]byte
	BatchNo        [5]byte
	ProductionWeek byte
	ProductionYear byte
}

// ParseVersion parses the 28 bytes of a GetVersion answer (three frames joined).
func ParseVersion(b []byte) (Version, error) {
	var v Version
	if len(b) != 28 {
		return v, fmt.Errorf("%w: version of %d bytes, want 28", ErrMalformed, len(b))
	}
	copy(v.Hardware[:], b[0:7])
	copy(v.Software[:], b[7:14])
	copy(v.UID[:], b[14:21])
	copy(v.BatchNo[:], b[21:26])
	v.ProductionWeek, v.ProductionYear = b[26], b[27]
	return v, nil
}

// GetVersion returns the card's hardware and software versions and UID.
func (c *Card) GetVersion() (Version, error) {
	b, err := c.runAuto(CmdGetVersion, nil, nil, -1)
	if err != nil {
		return Version{}, err
	}
	return ParseVersion(b)
}

// GetCardUID returns the real UID of a card (random-ID cards included); it
// needs authentication and comes encrypted.
func (c *Card) GetCardUID() ([]byte, error) {
	if err := c.needAuth(CmdGetCardUID); err != nil {
		return nil, err
	}
	b, err := c.run(CmdGetCardUID, nil, nil, CommFull, 7)
	if err != nil {
		return nil, err
	}
	if err := wantLen(CmdGetCardUID, b, 7); err != nil {
		return nil, err
	}
	return b, nil
}

// GetApplicationIDs lists the applications on the card.
func (c *Card) GetApplicationIDs() ([]AID, error) {
	b, err := c.runAuto(CmdGetApplicationIDs, nil, nil, -1)
	if err != nil {
		return nil, err
	}
	return ParseAIDs(b)
}

// ParseAIDs parses a list of 3-byte AIDs.
func ParseAIDs(b []byte) ([]AID, error) {
	if len(b)%3 != 0 {
		return nil, fmt.Errorf("%w: AID list of %d bytes", ErrMalformed, len(b))
	}
	out := make([]AID, 0, len(b)/3)
	for i := 0; i < len(b); i += 3 {
		out = append(out, AID(Uint24(b[i:])))
	}
	return out, nil
}

// SelectApplication selects an application (0 for the PICC level). It ends
// any authentication.
func (c *Card) SelectApplication(aid AID) error {
	c.dropSession()
	_, err := c.run(CmdSelectApplication, aid.bytes(), nil, CommPlain, -1)
	if err != nil {
		return err
	}
	c.aid = aid
	return nil
}

// Application key settings (key settings 1) bits.
const (
	KeySettingAllowChangeMasterKey byte = 0x01 // the master key can be changed
	KeySettingFreeListing          byte = 0x02 // directory (GetFileIDs, GetApplicationIDs...) without auth
	KeySettingFreeCreateDelete     byte = 0x04 // create/delete without master key auth
	KeySettingConfigChangeable     byte = 0x08 // key settings can be changed
	// The high nibble names the key needed to change other keys: 0x0-0xD a
	// key number, 0xE the key itself, 0xF keys frozen.
)

// CreateApplication creates an application with keySettings (key settings
// 1) and numKeys keys of type keyType.
func (c *Card) CreateApplication(aid AID, keySettings byte, numKeys int, keyType KeyType) error {
	if numKeys < 1 || numKeys > 14 {
		return fmt.Errorf("%w: number of keys %d", ErrMalformed, numKeys)
	}
	ks2 := byte(numKeys)
	switch keyType {
	case KeyAES:
		ks2 |= 0x80
	case Key3K3DES:
		ks2 |= 0x40
	case KeyDES, Key2K3DES:
	default:
		return fmt.Errorf("%w: key type %v", ErrUnsupported, keyType)
	}
	h := append(aid.bytes(), keySettings, ks2)
	_, err := c.runAuto(CmdCreateApplication, h, nil, -1)
	return err
}

// CreateApplicationISO creates an application as CreateApplication does,
// with an ISO/IEC 7816-4 DF: file identifier fid (sent LSB first) and DF
// name dfName (0-16 bytes; empty for none). Its files may then have ISO
// file identifiers, and ISO SELECT reaches it by fid or by name.
func (c *Card) CreateApplicationISO(aid AID, keySettings byte, numKeys int, keyType KeyType, fid uint16, dfName []byte) error {
	if len(dfName) > 16 {
		return fmt.Errorf("%w: DF name of %d bytes", ErrMalformed, len(dfName))
	}
	if numKeys < 1 || numKeys > 14 {
		return fmt.Errorf("%w: number of keys %d", ErrMalformed, numKeys)
	}
	ks2 := byte(numKeys) | 0x20
	switch keyType {
	case KeyAES:
		ks2 |= 0x80
	case Key3K3DES:
		ks2 |= 0x40
	case KeyDES, Key2K3DES:
	default:
		return fmt.Errorf("%w: key type %v", ErrUnsupported, keyType)
	}
	h := append(append(aid.bytes(), keySettings, ks2, byte(fid), byte(fid>>8)), dfName...)
	_, err := c.runAuto(CmdCreateApplication, h, nil, -1)
	return err
}

// DeleteApplication deletes an application.
func (c *Card) DeleteApplication(aid AID) error {
	_, err := c.runAuto(CmdDeleteApplication, aid.bytes(), nil, -1)
	if err == nil && aid == c.aid {
		c.dropSession()
		c.aid = 0
	}
	return err
}

// FormatPICC deletes all applications and files (PICC master key needed).
func (c *Card) FormatPICC() error {
	_, err := c.runAuto(CmdFormatPICC, nil, nil, -1)
	return err
}

// GetFreeMemory returns the free EEPROM in bytes.
func (c *Card) GetFreeMemory() (int, error) {
	b, err := c.runAuto(CmdGetFreeMemory, nil, nil, -1)
	if err != nil {
		return 0, err
	}
	if err := wantLen(CmdGetFreeMemory, b, 3); err != nil {
		return 0, err
	}
	return Uint24(b), nil
}

// KeySettings is the answer to GetKeySettings.
type KeySettings struct {
	Settings byte    // key settings 1
	MaxKeys  int     // number of keys
	KeyType  KeyType // type of the keys
}

// ParseKeySettings parses the 2-byte answer to GetKeySettings.
func ParseKeySettings(b []byte) (KeySettings, error) {
	if len(b) != 2 {
		return KeySettings{}, fmt.Errorf("%w: key settings of %d bytes", ErrMalformed, len(b))
	}
	ks := KeySettings{Settings: b[0], MaxKeys: int(b[1] & 0x0F), KeyType: KeyDES}
	switch b[1] & 0xC0 {
	case 0x80:
		ks.KeyType = KeyAES
	case 0x40:
		ks.KeyType = Key3K3DES
	case 0x00:
	default:
		return KeySettings{}, fmt.Errorf("%w: key type bits %02X", ErrUnsupported, b[1]&0xC0)
	}
	return ks, nil
}

// GetKeySettings returns the key settings of the selected application or PICC.
func (c *Card) GetKeySettings() (KeySettings, error) {
	b, err := c.runAuto(CmdGetKeySettings, nil, nil, -1)
	if err != nil {
		return KeySettings{}, err
	}
	return ParseKeySettings(b)
}

// ChangeKeySettings sets key settings 1 of the selected application or PICC
// (master key authentication needed; sent encrypted).
func (c *Card) ChangeKeySettings(settings byte) error {
	if err := c.needAuth(CmdChangeKeySettings); err != nil {
		return err
	}
	_, err := c.runAuto(CmdChangeKeySettings, nil, []byte{settings}, -1)
	return err
}

// GetKeyVersion returns the version of key keyNo.
func (c *Card) GetKeyVersion(keyNo byte) (byte, error) {
	b, err := c.runAuto(CmdGetKeyVersion, []byte{keyNo}, nil, -1)
	if err != nil {
		return 0, err
	}
	if err := wantLen(CmdGetKeyVersion, b, 1); err != nil {
		return 0, err
	}
	return b[0], nil
}

// SetConfiguration options.
const (
	ConfigPICC    byte = 0x00 // data: 1 byte, bit 0 disables FormatPICC, bit 1 enables random ID
	ConfigDefault byte = 0x01 // data: default key (24 bytes) and version
	ConfigATS     byte = 0x02 // data: user-defined ATS, its first byte TL its length
)

// MaxATS is the longest user-defined ATS SetConfiguration accepts.
const MaxATS = 20

// SetConfiguration sends SetConfiguration(option, data) encrypted (PICC
// master key authentication needed).
func (c *Card) SetConfiguration(option byte, data []byte) error {
	if err := c.needAuth(CmdSetConfiguration); err != nil {
		return err
	}
	_, err := c.runAuto(CmdSetConfiguration, []byte{option}, data, -1)
	return err
}
