package vcard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// errNoState: the state file does not exist yet.
var errNoState = errors.New("vcard: no state file")

// ErrState is returned by New for a state file it cannot use.
var ErrState = errors.New("vcard: bad state file")

// The state file is JSON with the committed card content, keys in clear.
// It is for tests and demos only.
type stateJSON struct {
	Format         int       `json:"format"`
	UID            []byte    `json:"uid"`
	RandomUID      bool      `json:"random_uid"`
	FormatDisabled bool      `json:"format_disabled"`
	PICCKey        keyJSON   `json:"picc_key"`
	KeySettings    byte      `json:"key_settings"`
	Apps           []appJSON `json:"apps"`
	DefaultKey     []byte    `json:"default_key,omitempty"`
	DefaultVersion byte      `json:"default_key_version,omitempty"`
	ATS            []byte    `json:"ats,omitempty"`
}

type keyJSON struct {
	Type    keyType `json:"type"`
	Value   []byte  `json:"value"`
	Version byte    `json:"version"`
}

type appJSON struct {
	AID          []byte     `json:"aid"`
	KeySettings  byte       `json:"ks1"`
	KeySettings2 byte       `json:"ks2"`
	Keys         []keyJSON  `json:"keys"`
	Files        []fileJSON `json:"files"`
	ISO          bool       `json:"iso,omitempty"`
	ISOFileID    uint16     `json:"iso_fid,omitempty"`
	DFName       []byte     `json:"df_name,omitempty"`
}

type fileJSON struct {
	No             byte     `json:"no"`
	Type           fileType `json:"type"`
	Comm           byte     `json:"comm"`
	Access         [4]byte  `json:"access"` // read, write, read&write, change
	Data           []byte   `json:"data,omitempty"`
	Lower          int32    `json:"lower,omitempty"`
	Upper          int32    `json:"upper,omitempty"`
	Value          int32    `json:"value,omitempty"`
	LimitedEnabled bool     `json:"limited_enabled,omitempty"`
	FreeGetValue   bool     `json:"free_get_value,omitempty"`
	LimitedValue   int32    `json:"limited_value,omitempty"`
	RecordSize     int      `json:"record_size,omitempty"`
	MaxRecords     int      `json:"max_records,omitempty"`
	Records        [][]byte `json:"records,omitempty"`
	ISOFileID      uint16   `json:"iso_fid,omitempty"`
}

const stateFormat = 1

func keyToJSON(k cardKey) keyJSON { return keyJSON{Type: k.typ, Value: k.value, Version: k.version} }

func keyFromJSON(k keyJSON) (cardKey, error) {
	if k.Type > keyAES || len(k.Value) != k.Type.keyLen() {
		return cardKey{}, fmt.Errorf("%w: key", ErrState)
	}
	return cardKey{typ: k.Type, value: slices.Clone(k.Value), version: k.Version}, nil
}

// saveState writes the committed content of p atomically with mode 0600.
func saveState(path string, p *picc) error {
	s := stateJSON{
		Format: stateFormat, UID: p.uid, RandomUID: p.randomUID, FormatDisabled: p.formatDisabled,
		PICCKey: keyToJSON(p.key), KeySettings: p.ks1,
		DefaultKey: p.defaultKey, DefaultVersion: p.defaultKeyVersion, ATS: p.ats,
	}
	for _, a := range p.apps {
		aj := appJSON{AID: a.aid[:], KeySettings: a.ks1, KeySettings2: a.ks2, ISO: a.iso, ISOFileID: a.isoFID, DFName: a.dfName}
		for _, k := range a.keys {
			aj.Keys = append(aj.Keys, keyToJSON(k))
		}
		nos := make([]byte, 0, len(a.files))
		for no := range a.files {
			nos = append(nos, no)
		}
		slices.Sort(nos)
		for _, no := range nos {
			f := a.files[no]
			aj.Files = append(aj.Files, fileJSON{
				No: no, Type: f.typ, Comm: f.comm,
				Access: [4]byte{f.read, f.write, f.readWrite, f.change},
				Data:   f.data, Lower: f.lower, Upper: f.upper, Value: f.value,
				LimitedEnabled: f.limitedEnabled, FreeGetValue: f.freeGetValue, LimitedValue: f.limitedValue,
				RecordSize: f.recordSize, MaxRecords: f.maxRecords, Records: f.records,
				ISOFileID: f.isoFID,
			})
		}
		s.Apps = append(s.Apps, aj)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("vcard: encoding state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("vcard: writing state: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("vcard: writing state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("vcard: writing state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("vcard: writing state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("vcard: writing state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("vcard: writing state: %w", err)
	}
	return nil
}

// loadState reads a state file written by saveState.
func loadState(path string) (*picc, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoState
	}
	if err != nil {
		return nil, fmt.Errorf("vcard: reading state: %w", err)
	}
	var s stateJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrState, "not JSON")
	}
	if s.Format != stateFormat || len(s.UID) != 7 {
		return nil, fmt.Errorf("%w: format or UID", ErrState)
	}
	p := &picc{uid: s.UID, randomUID: s.RandomUID, formatDisabled: s.FormatDisabled, ks1: s.KeySettings,
		defaultKey: s.DefaultKey, defaultKeyVersion: s.DefaultVersion, ats: s.ATS}
	if (len(p.defaultKey) != 0 && len(p.defaultKey) != 24) || len(p.ats) > desfire.MaxATS {
		return nil, fmt.Errorf("%w: configuration", ErrState)
	}
	if p.key, err = keyFromJSON(s.PICCKey); err != nil {
		return nil, err
	}
	for _, aj := range s.Apps {
		if len(aj.AID) != 3 || len(aj.Keys) < 1 || len(aj.Keys) > 14 {
			return nil, fmt.Errorf("%w: application", ErrState)
		}
		a := &app{aid: aidOf(aj.AID), ks1: aj.KeySettings, ks2: aj.KeySettings2, files: map[byte]*file{},
			iso: aj.ISO, isoFID: aj.ISOFileID, dfName: aj.DFName}
		if len(a.dfName) > 16 {
			return nil, fmt.Errorf("%w: application", ErrState)
		}
		for _, kj := range aj.Keys {
			k, err := keyFromJSON(kj)
			if err != nil {
				return nil, err
			}
			a.keys = append(a.keys, k)
		}
		for _, fj := range aj.Files {
			f := &file{
				typ: fj.Type, comm: fj.Comm,
				read: fj.Access[0], write: fj.Access[1], readWrite: fj.Access[2], change: fj.Access[3],
				data: fj.Data, lower: fj.Lower, upper: fj.Upper, value: fj.Value,
				limitedEnabled: fj.LimitedEnabled, freeGetValue: fj.FreeGetValue, limitedValue: fj.LimitedValue,
				recordSize: fj.RecordSize, maxRecords: fj.MaxRecords, records: fj.Records,
				isoFID: fj.ISOFileID,
			}
			if err := f.validate(); err != nil || fj.No >= maxFiles {
				return nil, fmt.Errorf("%w: file %d", ErrState, fj.No)
			}
			a.files[fj.No] = f
		}
		p.apps = append(p.apps, a)
	}
	return p, nil
}

// validate checks the invariants the commands rely on.
func (f *file) validate() error {
	bad := errors.New("inconsistent file")
	switch f.typ {
	case fileStd, fileBackup:
		if len(f.data) == 0 {
			return bad
		}
	case fileValue:
		if f.lower > f.upper || f.value < f.lower || f.value > f.upper {
			return bad
		}
	case fileLinearRecord, fileCyclicRecord:
		if f.recordSize <= 0 || f.maxRecords <= 0 || len(f.records) > f.maxRecords {
			return bad
		}
		for _, r := range f.records {
			if len(r) != f.recordSize {
				return bad
			}
		}
	default:
		return bad
	}
	return nil
}
