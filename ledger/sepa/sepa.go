// Package sepa writes SEPA credit-transfer initiation files (ISO 20022
// pain.001.001.09) for refund payouts, and checks IBANs.
package sepa

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode"
)

// ErrInvalid is returned for a payment that cannot go into a SEPA file.
var ErrInvalid = errors.New("sepa: invalid payment")

// NormalizeIBAN removes spaces and upper-cases an IBAN and checks its
// length, characters and ISO 7064 mod-97 check digits.
func NormalizeIBAN(s string) (string, error) {
	var b strings.Builder
	for _, r := range s {
		if r == ' ' {
			continue
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	iban := b.String()
	if len(iban) < 15 || len(iban) > 34 {
		return "", fmt.Errorf("%w: IBAN must be 15 to 34 characters", ErrInvalid)
	}
	for i, r := range iban {
		ok := r >= '0' && r <= '9' || r >= 'A' && r <= 'Z'
		if !ok || (i < 2 && !(r >= 'A' && r <= 'Z')) || (i >= 2 && i < 4 && !(r >= '0' && r <= '9')) {
			return "", fmt.Errorf("%w: IBAN has a bad character", ErrInvalid)
		}
	}
	var digits strings.Builder
	for _, r := range iban[4:] + iban[:4] {
		if r >= 'A' && r <= 'Z' {
			fmt.Fprintf(&digits, "%d", r-'A'+10)
		} else {
			digits.WriteRune(r)
		}
	}
	n, _ := new(big.Int).SetString(digits.String(), 10)
	if new(big.Int).Mod(n, big.NewInt(97)).Int64() != 1 {
		return "", fmt.Errorf("%w: IBAN check digits do not match", ErrInvalid)
	}
	return iban, nil
}

// Party is the debtor (the organizer) of a payout file.
type Party struct {
	Name string
	IBAN string
	BIC  string // optional
}

// Payment is one credit transfer.
type Payment struct {
	EndToEndID string // at most 35 characters, shown to the creditor's bank
	Name       string
	IBAN       string
	BIC        string // optional
	Amount     int64  // euro cents
	Remittance string // unstructured, at most 140 characters
}

// File is one payment information block: every payment from one debtor
// account on one execution date.
type File struct {
	MessageID string // at most 35 characters, unique per file
	Created   time.Time
	Execution time.Time // requested execution date
	Debtor    Party
	Payments  []Payment
}

// Marshal renders the file as pain.001.001.09 XML. It fails with ErrInvalid
// for a bad IBAN, amount or over-long identifier.
func (f *File) Marshal() ([]byte, error) {
	if len(f.Payments) == 0 {
		return nil, fmt.Errorf("%w: no payments", ErrInvalid)
	}
	if f.MessageID == "" || len(f.MessageID) > 35 {
		return nil, fmt.Errorf("%w: message id must be 1..35 characters", ErrInvalid)
	}
	debtorIBAN, err := NormalizeIBAN(f.Debtor.IBAN)
	if err != nil {
		return nil, err
	}
	var total int64
	txs := make([]cdtTrfTxInf, len(f.Payments))
	for i, p := range f.Payments {
		iban, err := NormalizeIBAN(p.IBAN)
		if err != nil {
			return nil, fmt.Errorf("payment %s: %w", p.EndToEndID, err)
		}
		if p.Amount <= 0 || p.Amount > 99_999_999_999 {
			return nil, fmt.Errorf("%w: payment %s: amount out of range", ErrInvalid, p.EndToEndID)
		}
		if p.EndToEndID == "" || len(p.EndToEndID) > 35 {
			return nil, fmt.Errorf("%w: end-to-end id must be 1..35 characters", ErrInvalid)
		}
		total += p.Amount
		t := cdtTrfTxInf{
			PmtId:    pmtID{EndToEndId: p.EndToEndID},
			Amt:      amt{InstdAmt: instdAmt{Ccy: "EUR", Value: cents(p.Amount)}},
			Cdtr:     party{Nm: clip(latin(p.Name), 70)},
			CdtrAcct: account{Id: accountID{IBAN: iban}},
			RmtInf:   &rmtInf{Ustrd: clip(latin(p.Remittance), 140)},
		}
		if p.BIC != "" {
			t.CdtrAgt = &agent{FinInstnId: finInstnID{BICFI: p.BIC}}
		}
		txs[i] = t
	}
	dbtrAgt := agent{FinInstnId: finInstnID{Othr: &othr{Id: "NOTPROVIDED"}}}
	if f.Debtor.BIC != "" {
		dbtrAgt = agent{FinInstnId: finInstnID{BICFI: f.Debtor.BIC}}
	}
	doc := document{
		Xmlns: "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09",
		Init: cstmrCdtTrfInitn{
			GrpHdr: grpHdr{MsgId: f.MessageID, CreDtTm: f.Created.UTC().Format("2006-01-02T15:04:05"),
				NbOfTxs: len(txs), CtrlSum: cents(total), InitgPty: party{Nm: clip(latin(f.Debtor.Name), 70)}},
			PmtInf: pmtInf{
				PmtInfId: f.MessageID, PmtMtd: "TRF", NbOfTxs: len(txs), CtrlSum: cents(total),
				PmtTpInf:    pmtTpInf{SvcLvl: svcLvl{Cd: "SEPA"}},
				ReqdExctnDt: reqdExctnDt{Dt: f.Execution.Format("2006-01-02")},
				Dbtr:        party{Nm: clip(latin(f.Debtor.Name), 70)},
				DbtrAcct:    account{Id: accountID{IBAN: debtorIBAN}},
				DbtrAgt:     dbtrAgt,
				ChrgBr:      "SLEV",
				Txs:         txs,
			},
		},
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func cents(v int64) string { return fmt.Sprintf("%d.%02d", v/100, v%100) }

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		r = r[:n]
	}
	return string(r)
}

// latin keeps the SEPA basic character set, replacing anything else by a space.
func latin(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		case strings.ContainsRune("/-?:().,'+ ", r):
			return r
		}
		return ' '
	}, s)
}

type document struct {
	XMLName xml.Name         `xml:"Document"`
	Xmlns   string           `xml:"xmlns,attr"`
	Init    cstmrCdtTrfInitn `xml:"CstmrCdtTrfInitn"`
}

type cstmrCdtTrfInitn struct {
	GrpHdr grpHdr `xml:"GrpHdr"`
	PmtInf pmtInf `xml:"PmtInf"`
}

type grpHdr struct {
	MsgId    string `xml:"MsgId"`
	CreDtTm  string `xml:"CreDtTm"`
	NbOfTxs  int    `xml:"NbOfTxs"`
	CtrlSum  string `xml:"CtrlSum"`
	InitgPty party  `xml:"InitgPty"`
}

type pmtInf struct {
	PmtInfId    string        `xml:"PmtInfId"`
	PmtMtd      string        `xml:"PmtMtd"`
	NbOfTxs     int           `xml:"NbOfTxs"`
	CtrlSum     string        `xml:"CtrlSum"`
	PmtTpInf    pmtTpInf      `xml:"PmtTpInf"`
	ReqdExctnDt reqdExctnDt   `xml:"ReqdExctnDt"`
	Dbtr        party         `xml:"Dbtr"`
	DbtrAcct    account       `xml:"DbtrAcct"`
	DbtrAgt     agent         `xml:"DbtrAgt"`
	ChrgBr      string        `xml:"ChrgBr"`
	Txs         []cdtTrfTxInf `xml:"CdtTrfTxInf"`
}

type pmtTpInf struct {
	SvcLvl svcLvl `xml:"SvcLvl"`
}

type svcLvl struct {
	Cd string `xml:"Cd"`
}

type reqdExctnDt struct {
	Dt string `xml:"Dt"`
}

type party struct {
	Nm string `xml:"Nm"`
}

type account struct {
	Id accountID `xml:"Id"`
}

type accountID struct {
	IBAN string `xml:"IBAN"`
}

type agent struct {
	FinInstnId finInstnID `xml:"FinInstnId"`
}

type finInstnID struct {
	BICFI string `xml:"BICFI,omitempty"`
	Othr  *othr  `xml:"Othr,omitempty"`
}

type othr struct {
	Id string `xml:"Id"`
}

type cdtTrfTxInf struct {
	PmtId    pmtID   `xml:"PmtId"`
	Amt      amt     `xml:"Amt"`
	CdtrAgt  *agent  `xml:"CdtrAgt,omitempty"`
	Cdtr     party   `xml:"Cdtr"`
	CdtrAcct account `xml:"CdtrAcct"`
	RmtInf   *rmtInf `xml:"RmtInf,omitempty"`
}

type pmtID struct {
	EndToEndId string `xml:"EndToEndId"`
}

type amt struct {
	InstdAmt instdAmt `xml:"InstdAmt"`
}

type instdAmt struct {
	Ccy   string `xml:"Ccy,attr"`
	Value string `xml:",chardata"`
}

type rmtInf struct {
	Ustrd string `xml:"Ustrd"`
}
