package apitype

// MenuProduct is one product of a merchant's menu (package ledger/menu):
// gross price in cents, VAT rate in basis points (2100 = 21 %).
type MenuProduct struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Price         int64  `json:"price"`
	VATRateBP     int32  `json:"vat_rate_bp"`
	Category      string `json:"category,omitempty"`
	AgeRestricted bool   `json:"age_restricted,omitempty"`
	Deposit       bool   `json:"deposit,omitempty"`
}

// MenuRequest is the body of PUT /v1/hq/merchants/{merchant}/menu: the
// products of the merchant's next menu version.
type MenuRequest struct {
	Products []MenuProduct `json:"products"`
}

// Menu is a merchant's menu: the answer of PUT and GET
// /v1/hq/merchants/{merchant}/menu and of GET /v1/terminal/menu (the
// terminal's merchant's current menu).
type Menu struct {
	Merchant string        `json:"merchant"`
	Version  int32         `json:"version"`
	Products []MenuProduct `json:"products"`
}

// VoidRequest is the body of POST /v1/terminal/voids: the terminal voids
// its card's last payment. ID (a UUID the terminal makes once and sends
// again with every retry) is the void's id and the id of the load that
// credits the card.
type VoidRequest struct {
	ID      string `json:"id"`
	Payment string `json:"payment"` // the payment's transaction id
}

// LineItem is one line of a deposit return: a deposit product of the
// menu, a negative quantity, the menu's unit price and VAT rate.
type LineItem struct {
	Product     string `json:"product"`
	Quantity    int32  `json:"quantity"`
	UnitPrice   int64  `json:"unit_price"`
	VATRateBP   int32  `json:"vat_rate_bp"`
	MenuVersion int32  `json:"menu_version"`
}

// DepositReturnRequest is the body of POST /v1/terminal/deposit-returns:
// deposit items given back (negative quantities) at the card in the
// field, nothing bought. ID is made once and sent again with every retry;
// it is the id of the load that credits the card.
type DepositReturnRequest struct {
	ID    string     `json:"id"`
	Card  string     `json:"card"`
	Items []LineItem `json:"items"`
}

// CardCredit is the answer to a void or a deposit return: the pending
// load that credits the card (GET /v1/terminal/pending-loads lists it
// until it is written).
type CardCredit struct {
	Load     string `json:"load"`
	Card     string `json:"card"`
	Amount   int64  `json:"amount"`
	Merchant string `json:"merchant"`
	Payment  string `json:"payment,omitempty"` // a void's payment
}
