package menu

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sampleJSON = `{"products":[{"id":"beer","name":"Beer 0.3l","price":350,"vat_rate_bp":2100,
	"category":"Drinks","age_restricted":true},{"id":"cup","name":"Cup deposit","price":100,"vat_rate_bp":0,
	"category":"Deposit","deposit":true}]}`

const sampleCSV = `id,name,price,vat_rate_bp,category,age_restricted,deposit
beer,Beer 0.3l,350,2100,Drinks,true,false
cup,Cup deposit,100,0,Deposit,false,true
`

func TestParseJSONAndCSV(t *testing.T) {
	j, err := Parse([]byte(sampleJSON))
	require.NoError(t, err)
	c, err := Parse([]byte(sampleCSV))
	require.NoError(t, err)
	require.Equal(t, j, c)
	require.Equal(t, Product{ID: "cup", Name: "Cup deposit", Price: 100, Category: "Deposit", Deposit: true}, c[1])
	var buf bytes.Buffer
	require.NoError(t, CSV(&buf, c))
	again, err := Parse(buf.Bytes())
	require.NoError(t, err)
	require.Equal(t, c, again)
}

func TestParseRejects(t *testing.T) {
	many := "id,name,price,vat_rate_bp,category,age_restricted,deposit\n" + strings.Repeat("x,X,1,0,,false,false\n", 1)
	for i := range MaxProducts {
		many += "p" + strings.Repeat("a", i%20) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ",P,1,0,,false,false\n"
	}
	tests := map[string]string{
		"empty":            ``,
		"no products":      `{"products":[]}`,
		"unknown field":    `{"products":[{"id":"a","name":"A","price":1,"vat_rate_bp":0,"colour":"red"}]}`,
		"bad id":           `{"products":[{"id":"Beer","name":"A","price":1,"vat_rate_bp":0}]}`,
		"long id":          `{"products":[{"id":"` + strings.Repeat("a", 33) + `","name":"A","price":1,"vat_rate_bp":0}]}`,
		"duplicate id":     `{"products":[{"id":"a","name":"A","price":1},{"id":"a","name":"B","price":1}]}`,
		"blank name":       `{"products":[{"id":"a","name":" ","price":1}]}`,
		"control in name":  `{"products":[{"id":"a","name":"A\u0007","price":1}]}`,
		"negative price":   `{"products":[{"id":"a","name":"A","price":-1}]}`,
		"huge price":       `{"products":[{"id":"a","name":"A","price":2147483648}]}`,
		"vat":              `{"products":[{"id":"a","name":"A","price":1,"vat_rate_bp":10001}]}`,
		"free deposit":     `{"products":[{"id":"a","name":"A","price":0,"deposit":true}]}`,
		"two objects":      `{"products":[{"id":"a","name":"A","price":1}]}{}`,
		"csv header":       "id,name,price\na,A,1\n",
		"csv price":        "id,name,price,vat_rate_bp,category,age_restricted,deposit\na,A,1.50,0,,false,false\n",
		"csv bool":         "id,name,price,vat_rate_bp,category,age_restricted,deposit\na,A,1,0,,yes,false\n",
		"csv short line":   "id,name,price,vat_rate_bp,category,age_restricted,deposit\na,A,1,0\n",
		"too many":         many,
		"invalid utf8":     "id,name,price,vat_rate_bp,category,age_restricted,deposit\na,\xff,1,0,,false,false\n",
		"category newline": `{"products":[{"id":"a","name":"A","price":1,"category":"x\ny"}]}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(in))
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrInvalid), "%v", err)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleJSON))
	f.Add([]byte(sampleCSV))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		// What parsed is valid and survives CSV.
		var buf bytes.Buffer
		if err := CSV(&buf, ps); err != nil {
			t.Fatal(err)
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("CSV of a parsed menu does not parse: %v", err)
		}
		if len(again) != len(ps) {
			t.Fatal("CSV lost products")
		}
	})
}
