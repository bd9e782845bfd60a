package sepa

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNormalizeIBAN(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"DE89 3704 0044 0532 0130 00", "DE89370400440532013000", true},
		{"gb82west12345698765432", "GB82WEST12345698765432", true},
		{"DE89 3704 0044 0532 0130 01", "", false},
		{"DE8", "", false},
		{"1E89370400440532013000", "", false},
		{"DE89-3704-0044-0532-0130", "", false},
	}
	for _, tc := range tests {
		got, err := NormalizeIBAN(tc.in)
		if !tc.ok {
			require.ErrorIs(t, err, ErrInvalid, tc.in)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
}

func TestMarshal(t *testing.T) {
	f := File{
		MessageID: "LC-PAYOUT-1",
		Created:   time.Date(2026, 8, 1, 10, 0, 0, 0, time.UTC),
		Execution: time.Date(2026, 8, 3, 0, 0, 0, 0, time.UTC),
		Debtor:    Party{Name: "Festival GmbH", IBAN: "DE89370400440532013000", BIC: "COBADEFFXXX"},
		Payments: []Payment{
			{EndToEndID: "R1", Name: "Zoë Müller", IBAN: "GB82 WEST 1234 5698 7654 32", Amount: 1250, Remittance: "Refund card 04AABBCC"},
			{EndToEndID: "R2", Name: "Ann", IBAN: "DE89370400440532013000", Amount: 5, Remittance: "Refund"},
		},
	}
	b, err := f.Marshal()
	require.NoError(t, err)
	s := string(b)
	require.Contains(t, s, `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">`)
	require.Contains(t, s, `<CtrlSum>12.55</CtrlSum>`)
	require.Contains(t, s, `<InstdAmt Ccy="EUR">12.50</InstdAmt>`)
	require.Contains(t, s, `<InstdAmt Ccy="EUR">0.05</InstdAmt>`)
	require.Contains(t, s, `<NbOfTxs>2</NbOfTxs>`)
	require.Contains(t, s, `<Nm>Zo  M ller</Nm>`, "non-SEPA characters replaced")
	require.Contains(t, s, `<ReqdExctnDt>`)
	require.Equal(t, 2, strings.Count(s, "<CdtTrfTxInf>"))
	// Well-formed XML.
	var v struct{}
	require.NoError(t, xml.Unmarshal(b, &v))

	bad := f
	bad.Payments = []Payment{{EndToEndID: "X", Name: "n", IBAN: "DE00", Amount: 1}}
	_, err = bad.Marshal()
	require.ErrorIs(t, err, ErrInvalid)
	bad.Payments = []Payment{{EndToEndID: "X", Name: "n", IBAN: "DE89370400440532013000", Amount: 0}}
	_, err = bad.Marshal()
	require.ErrorIs(t, err, ErrInvalid)
}
