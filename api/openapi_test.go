package api_test

import (
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/handover"
)

type oaDoc struct {
	OpenAPI    string                     `json:"openapi"`
	Info       map[string]any             `json:"info"`
	Paths      map[string]map[string]oaOp `json:"paths"`
	Components struct {
		Schemas         map[string]map[string]any `json:"schemas"`
		Responses       map[string]any            `json:"responses"`
		SecuritySchemes map[string]map[string]any `json:"securitySchemes"`
	} `json:"components"`
}

type oaOp struct {
	OperationID string                `json:"operationId"`
	Roles       []string              `json:"x-loopcard-roles"`
	Security    []map[string][]string `json:"security"`
	Parameters  []struct {
		Name     string `json:"name"`
		In       string `json:"in"`
		Required bool   `json:"required"`
	} `json:"parameters"`
	RequestBody map[string]any            `json:"requestBody"`
	Responses   map[string]map[string]any `json:"responses"`
}

// TestOpenAPIMatchesRoutes holds the document to the server: the same
// routes, the same roles, path parameters declared, every reference
// resolved, and the schemas of the request and response types naming
// exactly the Go types' JSON fields.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc oaDoc
	require.NoError(t, json.Unmarshal(api.OpenAPI, &doc))
	require.Regexp(t, `^3\.0\.\d+$`, doc.OpenAPI)
	require.NotEmpty(t, doc.Info["title"])
	require.NotEmpty(t, doc.Info["version"])

	srv := newServerOnly(t)
	var want, got []string
	for _, r := range srv.Routes() {
		roles := make([]string, len(r.Roles))
		for i, x := range r.Roles {
			roles[i] = string(x)
		}
		sort.Strings(roles)
		want = append(want, r.Method+" "+r.Path+" "+strings.Join(roles, ","))
	}
	ids := map[string]bool{}
	param := regexp.MustCompile(`\{([a-z_]+)\}`)
	for path, ops := range doc.Paths {
		require.True(t, strings.HasPrefix(path, "/"), path)
		for method, op := range ops {
			roles := slices.Clone(op.Roles)
			sort.Strings(roles)
			got = append(got, strings.ToUpper(method)+" "+path+" "+strings.Join(roles, ","))
			require.NotEmpty(t, op.OperationID, path)
			require.False(t, ids[op.OperationID], "operationId %s twice", op.OperationID)
			ids[op.OperationID] = true
			require.NotEmpty(t, op.Responses, path)
			for code, r := range op.Responses {
				if _, ok := r["$ref"]; !ok {
					require.NotEmpty(t, r["description"], "%s %s %s", method, path, code)
				}
			}
			var declared, inPath []string
			for _, p := range op.Parameters {
				if p.In == "path" {
					require.True(t, p.Required, "%s: path parameter %s must be required", path, p.Name)
					declared = append(declared, p.Name)
				}
			}
			for _, m := range param.FindAllStringSubmatch(path, -1) {
				inPath = append(inPath, m[1])
			}
			require.ElementsMatch(t, inPath, declared, "%s %s path parameters", method, path)
			for _, req := range op.Security {
				for name := range req {
					require.Contains(t, doc.Components.SecuritySchemes, name)
				}
			}
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	require.Equal(t, want, got, "routes and OpenAPI paths differ")

	// Every $ref resolves.
	var raw any
	require.NoError(t, json.Unmarshal(api.OpenAPI, &raw))
	var walk func(v any)
	refs := 0
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				refs++
				parts := strings.Split(strings.TrimPrefix(r, "#/"), "/")
				require.Len(t, parts, 3, r)
				require.Equal(t, "components", parts[0], r)
				cm := raw.(map[string]any)["components"].(map[string]any)[parts[1]].(map[string]any)
				require.Contains(t, cm, parts[2], "unresolved %s", r)
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(raw)
	require.Greater(t, refs, 20)

	// Every schema is well formed: a known type, items for arrays, required
	// properties that exist.
	var checkSchema func(where string, sc map[string]any)
	checkSchema = func(where string, sc map[string]any) {
		if _, ok := sc["$ref"]; ok {
			return
		}
		typ, _ := sc["type"].(string)
		require.Contains(t, []string{"string", "integer", "number", "boolean", "array", "object"}, typ, where)
		switch typ {
		case "array":
			items, ok := sc["items"].(map[string]any)
			require.True(t, ok, "%s: array without items", where)
			checkSchema(where+"[]", items)
		case "object":
			props, _ := sc["properties"].(map[string]any)
			for name, p := range props {
				checkSchema(where+"."+name, p.(map[string]any))
			}
			if req, ok := sc["required"].([]any); ok {
				for _, r := range req {
					require.Contains(t, props, r, "%s: required %v is not a property", where, r)
				}
			}
		}
	}
	for name, sc := range doc.Components.Schemas {
		checkSchema(name, sc)
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if op.RequestBody != nil {
				content := op.RequestBody["content"].(map[string]any)
				require.Contains(t, content, "application/json", "%s %s", method, path)
				require.Equal(t, true, op.RequestBody["required"], "%s %s", method, path)
			}
			for code, r := range op.Responses {
				if content, ok := r["content"].(map[string]any); ok {
					for ct, m := range content {
						checkSchema(method+" "+path+" "+code+" "+ct, m.(map[string]any)["schema"].(map[string]any))
					}
				}
			}
		}
	}

	// Schemas name exactly the JSON fields of the Go types.
	for name, v := range map[string]any{
		"EnrolRequest": apitype.EnrolRequest{}, "EnrolResponse": apitype.EnrolResponse{}, "SessionKeyRequest": apitype.SessionKeyRequest{},
		"BatchRequest": apitype.BatchRequest{}, "BatchResponse": apitype.BatchResponse{}, "TopUpRequest": apitype.TopUpRequest{},
		"StoreRequest": apitype.StoreRequest{}, "TerminalRequest": apitype.TerminalRequest{}, "TerminalResponse": apitype.TerminalResponse{},
		"Alert": apitype.AlertRecord{}, "AuditRecord": apitype.AuditRecord{}, "CardStatus": apitype.CardStatus{}, "History": apitype.History{},
		"RefundRequest": apitype.RefundRequest{}, "RefundResponse": apitype.RefundResponse{}, "ClaimRequest": apitype.ClaimRequest{}, "ClaimResponse": apitype.ClaimResponse{},
		"Consent": apitype.Consent{}, "LogoutResponse": apitype.LogoutResponse{},
		"PaymentWebhookResponse": apitype.PaymentWebhookResponse{}, "PaymentEvent": payment.Event{}, "ExportedConsent": apitype.ExportedConsent{},
		"LoginRequest": apitype.LoginRequest{}, "LoginResponse": apitype.LoginResponse{}, "ProfileExport": apitype.ProfileExport{},
		"SessionKey": apitype.SessionKeyResponse{}, "StoreKeyRequest": apitype.StoreKeyRequest{}, "HandOverRequest": apitype.HandOverRequest{},
		"EntriesRequest": apitype.EntriesRequest{}, "HandoverEntry": handover.Entry{}, "AppendResponse": apitype.AppendResponse{},
		"PendingLoad": apitype.PendingLoad{}, "CreditKeyRequest": apitype.CreditKeyRequest{}, "CreditKey": apitype.CreditKeyResponse{},
		"LoadWrittenRequest": apitype.LoadWrittenRequest{}, "SaleRequest": apitype.SaleRequest{}, "DayCloseRequest": apitype.DayCloseRequest{},
		"DayCloseResponse": apitype.DayCloseResponse{}, "BusinessDay": apitype.BusinessDay{}, "StoreDayReport": ledger.StoreDayReport{}, "ProductReport": ledger.ProductReport{},
		"MoneyResponse": apitype.MoneyResponse{}, "StoreKexRequest": apitype.StoreKexRequest{}, "StoreCreditKey": apitype.StoreCreditKeyResponse{},
		"BalanceKeyRequest": apitype.BalanceKeyRequest{}, "BalanceKey": apitype.BalanceKeyResponse{},
		"StoreInfo": apitype.StoreInfo{}, "TerminalInfo": apitype.TerminalInfo{}, "OrganizerKey": apitype.OrganizerKey{}, "ReviewRequest": apitype.ReviewRequest{},
		"UnblockResponse": apitype.UnblockResponse{}, "Blocklist": apitype.Blocklist{}, "RefusedTap": apitype.RefusedTap{},
		"BlockRequest": apitype.BlockRequest{}, "BlockResponse": apitype.BlockResponse{}, "ReplaceRequest": apitype.ReplaceRequest{},
		"ReplaceResponse": apitype.ReplaceResponse{}, "RefundsResponse": apitype.RefundsResponse{}, "RefundRecord": apitype.RefundRecord{},
		"HeldTxsResponse": apitype.HeldTxsResponse{}, "HeldTxRecord": apitype.HeldTxRecord{}, "AuditVerification": apitype.AuditVerification{}, "PayoutRequest": apitype.PayoutRequest{}, "PayoutRun": apitype.PayoutRun{},
		"PayoutLine": apitype.PayoutLine{}, "PayoutList": apitype.PayoutList{}, "PayoutRecord": apitype.PayoutRecord{},
		"CorrectionRequest": apitype.CorrectionRequest{}, "Correction": apitype.Correction{},
		"CorrectionList": apitype.CorrectionList{}, "VoucherBatchRequest": apitype.VoucherBatchRequest{},
		"VoucherBatchResponse": apitype.VoucherBatchResponse{}, "VoucherRedeemRequest": apitype.VoucherRedeemRequest{},
		"MenuProduct": apitype.MenuProduct{}, "MenuRequest": apitype.MenuRequest{}, "Menu": apitype.Menu{}, "VoidRequest": apitype.VoidRequest{},
		"LineItem": apitype.LineItem{}, "DepositReturnRequest": apitype.DepositReturnRequest{}, "CardCredit": apitype.CardCredit{}, "Error": struct {
			Error     string `json:"error"`
			RequestID string `json:"request_id"`
		}{},
	} {
		s, ok := doc.Components.Schemas[name]
		require.True(t, ok, name)
		var props []string
		for p := range s["properties"].(map[string]any) {
			props = append(props, p)
		}
		require.ElementsMatch(t, jsonFields(reflect.TypeOf(v)), props, "schema %s", name)
	}
}

// jsonFields lists the JSON names of a struct's fields, embedded ones
// flattened.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

// noHSM satisfies api.HSM for tests that only look at the routes.
type noHSM struct{ api.HSM }

func newServerOnly(t *testing.T) *api.Server {
	t.Helper()
	s, err := api.New(api.Config{Ledger: ledger.New(nil, ledger.Options{}), Batches: batch.NewBatches(nil), HSM: noHSM{}})
	require.NoError(t, err)
	return s
}

// TestOpenAPIValidates validates the document with kin-openapi: OpenAPI 3.0
// structure, schemas, references, parameters and security schemes.
func TestOpenAPIValidates(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(loader.Context))
	// The validator catches what is wrong: a broken reference fails.
	broken := strings.Replace(string(api.OpenAPI), `"#/components/schemas/History"`, `"#/components/schemas/Nothing"`, 1)
	bdoc, err := openapi3.NewLoader().LoadFromData([]byte(broken))
	if err == nil {
		err = bdoc.Validate(loader.Context)
	}
	require.Error(t, err)
}
