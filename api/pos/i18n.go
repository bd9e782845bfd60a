package pos

import (
	"fmt"
	"net/http"
	"time"

	"github.com/loopcard/loopcard/api/internal/pagelang"
)

// Lang is a language the apps speak; English is the fallback.
type Lang string

// The apps' languages.
const (
	English Lang = "en"
	Dutch   Lang = "nl"
)

// langCookie remembers the language switch (not secret, not personal).
const langCookie = "lc_pos_lang"

// pickLang chooses the language: ?lang=, then the cookie, then
// Accept-Language (pagelang.Pick).
func pickLang(r *http.Request) (Lang, bool) {
	l, explicit := pagelang.Pick(r, langCookie)
	return Lang(l), explicit
}

// messages are the apps' texts: English, then Dutch. Every key has both
// (TestMessagesComplete).
var messages = map[string][2]string{
	"bar":          {"Bar", "Bar"},
	"storetitle":   {"Store", "Kassa"},
	"skip":         {"Skip to content", "Naar de inhoud"},
	"nav":          {"Till", "Kassa"},
	"sale":         {"Sale", "Verkoop"},
	"recent":       {"Last transactions", "Laatste transacties"},
	"recentnav":    {"History", "Historie"},
	"balancenav":   {"Balance", "Saldo"},
	"online":       {"Online", "Online"},
	"offline":      {"Offline", "Offline"},
	"unsent":       {"to upload", "te versturen"},
	"oldest":       {"oldest", "oudste"},
	"ago":          {"ago", "geleden"},
	"basket":       {"Basket", "Mandje"},
	"other":        {"Other", "Overig"},
	"notwritten":   {"Booked: the card gets it at its next tap at an online terminal.", "Geboekt: de kaart krijgt het bij haar volgende tik aan een online terminal."},
	"empty":        {"The basket is empty: tap a product.", "Het mandje is leeg: tik op een product."},
	"total":        {"Total", "Totaal"},
	"charge":       {"Charge", "Afrekenen"},
	"refundbtn":    {"Give deposit back", "Statiegeld teruggeven"},
	"clear":        {"Clear", "Wissen"},
	"add":          {"Add", "Toevoegen"},
	"less":         {"One less", "Eén minder"},
	"more":         {"One more", "Eén meer"},
	"returned":     {"returned", "terug"},
	"return":       {"Returned", "Teruggebracht"},
	"age":          {"18+", "18+"},
	"nomenu":       {"No menu yet: start with --menu FILE, or set one with loopcard menu set.", "Nog geen menu: start met --menu BESTAND, of stel er een in met loopcard menu set."},
	"present":      {"Present the card", "Houd de kaart bij de lezer"},
	"presenthint":  {"Hold the card on the reader until the screen changes.", "Houd de kaart op de lezer tot het scherm verandert."},
	"waiting":      {"Waiting for a card…", "Wachten op een kaart…"},
	"checkagain":   {"Look again", "Opnieuw kijken"},
	"cancel":       {"Cancel", "Annuleren"},
	"paid":         {"Paid", "Betaald"},
	"declined":     {"Declined", "Geweigerd"},
	"newbalance":   {"New balance", "Nieuw saldo"},
	"balance":      {"Balance", "Saldo"},
	"newsale":      {"New sale", "Nieuwe verkoop"},
	"void":         {"Void this payment (card on the reader)", "Deze betaling terugdraaien (kaart op de lezer)"},
	"voided":       {"Voided", "Teruggedraaid"},
	"deposits":     {"Deposit given back", "Statiegeld teruggegeven"},
	"checkbalance": {"Check a card's balance", "Saldo van een kaart bekijken"},
	"balancehint":  {"Tap the button, then hold the card on the reader.", "Tik op de knop en houd dan de kaart op de lezer."},
	"readcard":     {"Read the card", "Kaart lezen"},
	"when":         {"When", "Wanneer"},
	"what":         {"What", "Wat"},
	"amount":       {"Amount", "Bedrag"},
	"card":         {"Card", "Kaart"},
	"state":        {"Ledger", "Grootboek"},
	"uploaded":     {"uploaded", "verstuurd"},
	"queued":       {"queued", "in de wachtrij"},
	"none":         {"Nothing yet.", "Nog niets."},
	"payment":      {"Payment", "Betaling"},
	"cancelled":    {"Cancelled: nothing was taken.", "Geannuleerd: er is niets afgeschreven."},
	"lang":         {"Language", "Taal"},
	"done":         {"Done", "Klaar"},
	"back":         {"Back", "Terug"},
	"busy":         {"The reader is busy with another card operation: finish or cancel it first.", "De lezer is bezig: rond die handeling eerst af of annuleer haar."},
	"csrf":         {"The form expired: try again.", "Het formulier is verlopen: probeer het opnieuw."},
	"badamount":    {"Give an amount such as 12.50 (at most 1,000.00).", "Geef een bedrag zoals 12,50 (ten hoogste 1.000,00)."},

	// Why a card operation failed.
	"err.insufficient": {"Not enough on the card.", "Te weinig saldo op de kaart."},
	"err.blocked":      {"This card is blocked (lost, stolen or replaced): keep it and send the holder to the store.", "Deze kaart is geblokkeerd (verloren, gestolen of vervangen): houd haar in en stuur de houder naar de kassa."},
	"err.uncertain":    {"The card left the reader too soon: present it again.", "De kaart ging te vroeg weg: houd haar opnieuw bij de lezer."},
	"err.unresolved":   {"An earlier payment of this card cannot be settled: send the holder to the store.", "Een eerdere betaling van deze kaart is onduidelijk: stuur de houder naar de kassa."},
	"err.nokey":        {"This terminal has no valid key: connect it to the network so that it fetches one.", "Deze terminal heeft geen geldige sleutel: verbind hem met het netwerk om er een op te halen."},
	"err.notsupported": {"A deposit return needs the server's menu: set one with loopcard menu set; the terminal fetches it when online.", "Statiegeld teruggeven vraagt het menu van de server: stel het in met loopcard menu set; de terminal haalt het op wanneer hij online is."},
	"err.mixedreturn":  {"Deposit comes back on its own: take the returned items alone, then the purchases as a new sale.", "Statiegeld gaat apart terug: neem eerst alleen de teruggebrachte items, dan de aankopen als nieuwe verkoop."},
	"err.needsonline":  {"This needs the server, which cannot be reached now: nothing was changed. Try again when the screen shows Online.", "Dit vraagt de server, die nu niet bereikbaar is: er is niets veranderd. Probeer het opnieuw wanneer het scherm Online toont."},
	"err.menu":         {"The basket does not match the terminal's menu (it changed): clear the basket and start again.", "Het mandje past niet bij het menu van de terminal (het is veranderd): wis het mandje en begin opnieuw."},
	"err.timeout":      {"No card was presented in time.", "Er werd geen kaart op tijd aangeboden."},
	"err.offline":      {"The server cannot be reached. Nothing was lost: the request is kept and finished when this card is presented again online.", "De server is niet bereikbaar. Er is niets verloren: het verzoek wordt bewaard en afgerond wanneer deze kaart weer online wordt aangeboden."},
	"err.refused":      {"The server refused it:", "De server weigerde het:"},
	"err.card":         {"The card could not be read: present it again.", "De kaart kon niet worden gelezen: houd haar opnieuw bij de lezer."},
	"err.nopayment":    {"There is no payment to void.", "Er is geen betaling om terug te draaien."},

	// The store till.
	"sell":        {"Sell a card", "Kaart verkopen"},
	"deposit":     {"Deposit", "Borg"},
	"credit":      {"Credit", "Tegoed"},
	"sellbtn":     {"Sell: present the card", "Verkopen: kaart aanbieden"},
	"topup":       {"Top up with cash", "Opwaarderen met contant geld"},
	"topupbtn":    {"Top up: present the card", "Opwaarderen: kaart aanbieden"},
	"sold":        {"Card sold", "Kaart verkocht"},
	"toppedup":    {"Topped up", "Opgewaardeerd"},
	"oncard":      {"On the card", "Op de kaart"},
	"inledger":    {"In the ledger", "In het grootboek"},
	"pendingload": {"Waiting to be loaded", "Nog te laden"},
	"number":      {"Card number", "Kaartnummer"},
	"daycash":     {"Today's cash", "Contant geld van vandaag"},
	"cashsales":   {"Card sales", "Kaartverkopen"},
	"cashtopups":  {"Top-ups", "Opwaarderingen"},
	"cashtotal":   {"Cash taken by this till", "Contant ontvangen door deze kassa"},
	"closeday":    {"Close the day", "Dag afsluiten"},
	"counted":     {"Counted cash", "Geteld contant geld"},
	"closebtn":    {"Close the day with this amount", "Dag afsluiten met dit bedrag"},
	"closed":      {"Day closed", "Dag afgesloten"},
	"expected":    {"Expected cash", "Verwacht contant geld"},
	"difference":  {"Difference", "Verschil"},
	"day":         {"Day", "Dag"},
	"openreqs":    {"waiting for their card", "wachten op hun kaart"},
	"euro":        {"in euros, such as 12.50", "in euro, zoals 12,50"},
}

// texts are the messages in one language.
type texts map[string]string

var catalog = func() map[Lang]texts {
	out := map[Lang]texts{English: {}, Dutch: {}}
	for k, v := range messages {
		out[English][k], out[Dutch][k] = v[0], v[1]
	}
	return out
}()

// money formats cents as euros in the language: 1,234.50 or 1.234,50.
func money(l Lang, v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "−", -v
	}
	whole, frac := v/100, v%100
	s := fmt.Sprint(whole)
	sep, dec := ",", "."
	if l == Dutch {
		sep, dec = ".", ","
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + sep + s[i:]
	}
	return fmt.Sprintf("%s€ %s%s%02d", sign, s, dec, frac)
}

// age is a short duration: 45 s, 12 min, 3 h.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	default:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
}
