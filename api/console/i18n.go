package console

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/loopcard/loopcard/api/internal/pagelang"
)

// Lang is a language the console speaks; English is the fallback.
type Lang string

// The console's languages.
const (
	English Lang = "en"
	Dutch   Lang = "nl"
)

// langCookie remembers the language switch (not secret, not personal).
const langCookie = "lc_console_lang"

// pickLang chooses the language: ?lang=, then the cookie, then
// Accept-Language (pagelang.Pick).
func pickLang(r *http.Request) (Lang, bool) {
	l, explicit := pagelang.Pick(r, langCookie)
	return Lang(l), explicit
}

// messages are the console's texts: English, then Dutch. Every key has
// both (TestMessagesComplete).
var messages = map[string][2]string{
	"title":             {"Loopcard HQ", "Loopcard HQ"},
	"skip":              {"Skip to content", "Naar de inhoud"},
	"nav":               {"Console", "Console"},
	"dashboard":         {"Dashboard", "Overzicht"},
	"alerts":            {"Alerts", "Meldingen"},
	"cards":             {"Cards", "Kaarten"},
	"terminalsnav":      {"Terminals", "Terminals"},
	"stores":            {"Stores and their days", "Winkels en hun dagen"},
	"storesnav":         {"Stores", "Winkels"},
	"mystore":           {"My store", "Mijn winkel"},
	"allstores":         {"All stores", "Alle winkels"},
	"keys":              {"Keys", "Sleutels"},
	"audit":             {"Audit log", "Auditlog"},
	"auditnav":          {"Audit", "Audit"},
	"from":              {"From (YYYY-MM-DD)", "Van (JJJJ-MM-DD)"},
	"to":                {"To (YYYY-MM-DD)", "Tot en met (JJJJ-MM-DD)"},
	"store":             {"Store", "Winkel"},
	"day":               {"Day", "Dag"},
	"expected":          {"Expected cash", "Verwacht contant"},
	"counted":           {"Counted cash", "Geteld contant"},
	"difference":        {"Difference", "Verschil"},
	"open":              {"open", "open"},
	"received":          {"Cards received", "Kaarten ontvangen"},
	"sold":              {"Cards sold", "Kaarten verkocht"},
	"instock":           {"Cards in stock", "Kaarten op voorraad"},
	"basekey":           {"Base key", "Basissleutel"},
	"kcv":               {"KCV", "KCV"},
	"id":                {"Id", "Id"},
	"actor":             {"Who", "Wie"},
	"action":            {"Action", "Actie"},
	"target":            {"On", "Op"},
	"outcome":           {"Outcome", "Uitkomst"},
	"next":              {"Next page", "Volgende pagina"},
	"receivedat":        {"Received", "Ontvangen"},
	"heldtxs":           {"Held terminal transactions", "Vastgehouden terminaltransacties"},
	"heldhint":          {"The ledger keeps these debits without posting them: a revoked terminal's, another merchant's, or a card chain that does not add up. The latest are shown first.", "Het grootboek houdt deze afschrijvingen vast zonder ze te boeken: van een ingetrokken terminal, van een ander verkooppunt, of een kaartketen die niet klopt. De laatste staan bovenaan."},
	"heldmore":          {"More are held than shown here; GET /v1/hq/held-transactions lists up to 1,000.", "Er worden er meer vastgehouden dan hier getoond; GET /v1/hq/held-transactions toont er tot 1.000."},
	"verifynow":         {"Verify the custody log now", "Het bewaringslogboek nu controleren"},
	"verification":      {"Verification of the custody log", "Controle van het bewaringslogboek"},
	"verifystatus":      {"Status", "Status"},
	"verifiedok":        {"verified", "in orde"},
	"verifiedfail":      {"FAILED", "MISLUKT"},
	"verifyfailed":      {"The export does not verify:", "De export klopt niet:"},
	"entries":           {"Entries", "Regels"},
	"checkpoints":       {"Checkpoints", "Controlepunten"},
	"openhandovers":     {"Handed over, not yet received", "Overgedragen, nog niet ontvangen"},
	"discrepancies":     {"Received with another count", "Ontvangen met een ander aantal"},
	"verifiedat":        {"Exported and verified by the server, as loopcard audit verify --hq-key does, at", "Geëxporteerd en gecontroleerd door de server, zoals loopcard audit verify --hq-key doet, om"},
	"root":              {"root", "wortel"},
	"prev":              {"Previous page", "Vorige pagina"},
	"page":              {"Page", "Pagina"},
	"pages":             {"Pages", "Pagina's"},
	"attention":         {"Terminals needing attention", "Terminals die aandacht vragen"},
	"termsall":          {"Terminals", "Terminals"},
	"termsattention":    {"Needing attention", "Vragen aandacht"},
	"termssilent":       {"No upload for 20 min", "20 min geen upload"},
	"termsqueued":       {"With transactions in their queue", "Met transacties in hun wachtrij"},
	"othermerchants":    {"others", "overige"},
	"termsnever":        {"Never uploaded", "Nooit geüpload"},
	"moreterms":         {"more need attention: see all terminals.", "meer vragen aandacht: zie alle terminals."},
	"allterminals":      {"All terminals", "Alle terminals"},
	"refunds":           {"Refunds", "Terugbetalingen"},
	"waiting":           {"Waiting for a payout", "Wachten op uitbetaling"},
	"requested":         {"Requested", "Aangevraagd"},
	"payouthint":        {"A payout pays the refunds that are due from the organizer's account by SEPA: review the run first, then approve exactly that run; it is booked and its pain.001 file for the bank stays here to download again (or: loopcard ledger payout).", "Een uitbetaling betaalt de verschuldigde terugbetalingen per SEPA van de rekening van de organisator: bekijk eerst de run en keur dan precies die run goed; ze wordt geboekt en het pain.001-bestand voor de bank blijft hier om opnieuw te downloaden (of: loopcard ledger payout)."},
	"payoutnew":         {"Pay the refunds that are due", "De verschuldigde terugbetalingen uitbetalen"},
	"debtorname":        {"Account holder (the organizer)", "Rekeninghouder (de organisator)"},
	"debtoriban":        {"IBAN to pay from", "IBAN om van te betalen"},
	"debtorbic":         {"BIC (optional)", "BIC (optioneel)"},
	"payoutreviewbtn":   {"Review the payout", "De uitbetaling bekijken"},
	"payoutreview":      {"The payout to approve", "De uitbetaling om goed te keuren"},
	"bysepa":            {"By SEPA", "Per SEPA"},
	"payoutlines":       {"The payout's refunds", "De terugbetalingen van de uitbetaling"},
	"refundsof":         {"refunds, in all", "terugbetalingen, samen"},
	"nothingbooked":     {"nothing is booked yet.", "er is nog niets geboekt."},
	"plan":              {"Plan", "Plan"},
	"payoutapprove":     {"Approve and book this payout", "Deze uitbetaling goedkeuren en boeken"},
	"nothingdue":        {"No refund is due yet. Waiting for their event's terminals to upload:", "Er is nog geen terugbetaling verschuldigd. Wachten op de uploads van de terminals van hun evenement:"},
	"payoutbooked":      {"Done: the payout is booked.", "Gedaan: de uitbetaling is geboekt."},
	"payoutbookedh":     {"The booked payout", "De geboekte uitbetaling"},
	"payoutdownload":    {"Download its pain.001 file", "Het pain.001-bestand downloaden"},
	"payouts":           {"Booked payouts", "Geboekte uitbetalingen"},
	"payoutfile":        {"File for the bank", "Bestand voor de bank"},
	"err.payoutchanged": {"The payout changed since you reviewed it (a refund or an upload came in): nothing was booked. Review it again.", "De uitbetaling is veranderd sinds je haar bekeek (een terugbetaling of een upload kwam binnen): er is niets geboekt. Bekijk haar opnieuw."},
	"notfixed":          {"fixed at payout", "vastgesteld bij uitbetaling"},
	"export":            {"Download the signed custody log export (for loopcard audit verify)", "Download de ondertekende export van het bewaarlogboek (voor loopcard audit verify)"},
	"batches":           {"Card batches", "Kaartbatches"},
	"batchesnav":        {"Batches", "Batches"},
	"batch":             {"Batch", "Batch"},
	"created":           {"Created", "Aangemaakt"},
	"completed":         {"Completed", "Voltooid"},
	"personalized":      {"Personalized", "Gepersonaliseerd"},
	"more":              {"more not shown here; the API lists them all.", "meer, hier niet getoond; de API toont ze allemaal."},
	"lasthours":         {"The last 24 hours with sales.", "De laatste 24 uur met verkoop."},
	"signin":            {"Sign in", "Inloggen"},
	"signout":           {"Sign out", "Uitloggen"},
	"organizer":         {"Organizer number", "Organisatornummer"},
	"name":              {"Name", "Naam"},
	"password":          {"Password", "Wachtwoord"},
	"code":              {"Code from the authenticator app (hq)", "Code uit de authenticator-app (hq)"},
	"signedin":          {"Signed in as", "Ingelogd als"},
	"language":          {"Language", "Taal"},
	"event":             {"Event", "Evenement"},
	"show":              {"Show", "Toon"},
	"salesperhour":      {"Sales per merchant per hour", "Verkoop per verkooppunt per uur"},
	"hour":              {"Hour (UTC)", "Uur (UTC)"},
	"merchant":          {"Merchant", "Verkooppunt"},
	"count":             {"Count", "Aantal"},
	"amount":            {"Amount", "Bedrag"},
	"sales":             {"Sales per merchant", "Verkoop per verkooppunt"},
	"topups":            {"Top-ups by channel", "Opwaarderingen per kanaal"},
	"channel":           {"Channel", "Kanaal"},
	"status":            {"Status", "Status"},
	"cardsmoney":        {"Cards with a balance", "Kaarten met saldo"},
	"outstanding":       {"Outstanding balance", "Openstaand saldo"},
	"pending":           {"Pending loads", "Openstaande opwaarderingen"},
	"held":              {"Held transactions", "Vastgehouden transacties"},
	"openalerts":        {"Open alerts", "Open meldingen"},
	"terminals":         {"Terminals", "Terminals"},
	"terminal":          {"Terminal", "Terminal"},
	"lastupload":        {"Last upload", "Laatste upload"},
	"age":               {"Since", "Geleden"},
	"oldestunsent":      {"Oldest unsent", "Oudste niet verzonden"},
	"queued":            {"Queued", "In wachtrij"},
	"silent":            {"no upload for 20 min", "20 min geen upload"},
	"never":             {"never", "nooit"},
	"none":              {"None.", "Geen."},
	"noevent":           {"No event yet.", "Nog geen evenement."},
	"kind":              {"Kind", "Soort"},
	"card":              {"Card", "Kaart"},
	"detail":            {"Detail", "Details"},
	"raised":            {"Raised", "Gemeld"},
	"review":            {"Review", "Beoordelen"},
	"reviewed":          {"Reviewed", "Beoordeeld"},
	"reason":            {"Reason", "Reden"},
	"unblock":           {"Unblock card", "Kaart deblokkeren"},
	"block":             {"Block card (lost or stolen)", "Kaart blokkeren (verloren of gestolen)"},
	"blockhint":         {"Terminals refuse a blocked card, offline too, once they have fetched the blocklist.", "Terminals weigeren een geblokkeerde kaart, ook offline, zodra ze de blokkeerlijst hebben opgehaald."},
	"blockreason":       {"Reason (such as lost or stolen)", "Reden (zoals verloren of gestolen)"},
	"doneblock":         {"Done: the card is blocked and on the blocklist for the terminals.", "Gedaan: de kaart is geblokkeerd en staat op de blokkeerlijst voor de terminals."},
	"replaced":          {"Replaced by a new card: it is on the blocklist already, and its balance moved to the new card.", "Vervangen door een nieuwe kaart: ze staat al op de blokkeerlijst en het saldo is naar de nieuwe kaart overgezet."},
	"blocking":          {"blocks the card", "blokkeert de kaart"},
	"findcard":          {"Find a card", "Kaart zoeken"},
	"cardnumber":        {"Card number (hex)", "Kaartnummer (hex)"},
	"find":              {"Find", "Zoeken"},
	"balance":           {"Balance", "Saldo"},
	"history":           {"History", "Geschiedenis"},
	"when":              {"When", "Wanneer"},
	"where":             {"Where", "Waar"},
	"topup":             {"top-up", "opwaardering"},
	"payment":           {"payment", "betaling"},
	"done":              {"Done.", "Gedaan."},
	"err.login":         {"Wrong organizer, name, password or code. After five wrong tries an account waits a few minutes.", "Verkeerde organisator, naam, wachtwoord of code. Na vijf foute pogingen wacht een account enkele minuten."},
	"err.session":       {"Your session ended: sign in again.", "Je sessie is verlopen: log opnieuw in."},
	"err.forbidden":     {"Your role may not do this.", "Je rol mag dit niet."},
	"err.notfound":      {"Not found (no such card, alert, terminal, merchant or event of your organizer).", "Niet gevonden (geen kaart, melding, terminal, verkooppunt of evenement van je organisator)."},
	"err.conflict":      {"Already done, or not possible yet (review every blocking alert first; a refunded or replaced card is on the blocklist already).", "Al gedaan, of nog niet mogelijk (beoordeel eerst elke blokkerende melding; een terugbetaalde of vervangen kaart staat al op de blokkeerlijst)."},
	"err.invalid":       {"Check what you entered: a reason is 1 to 500 characters, an id is a-z 0-9 . _ -, a token lives 1 to 720 hours.", "Controleer de invoer: een reden is 1 tot 500 tekens, een id is a-z 0-9 . _ -, een token leeft 1 tot 720 uur."},
	"err.csrf":          {"This form expired: reload the page and try again.", "Dit formulier is verlopen: laad de pagina opnieuw."},
	"err.internal":      {"Something went wrong; the request id is in the log.", "Er ging iets mis; het verzoeknummer staat in het logboek."},
	"err.notfoundpg":    {"No such page.", "Deze pagina bestaat niet."},
	"register":          {"Register a terminal", "Terminal registreren"},
	"registerbtn":       {"Register", "Registreren"},
	"terminalid":        {"Terminal id (a-z 0-9 . _ -)", "Terminal-id (a-z 0-9 . _ -)"},
	"merchantid":        {"Merchant id", "Verkooppunt-id"},
	"anyevent":          {"(fixed at enrolment)", "(vastgelegd bij inschrijving)"},
	"ttlhours":          {"Token valid for (hours)", "Token geldig (uren)"},
	"enroltoken":        {"Enrolment token, shown only now: enter it on the terminal", "Inschrijftoken, alleen nu getoond: voer het in op de terminal"},
	"expires":           {"Expires", "Verloopt"},
	"enrolat":           {"Enrols at", "Inschrijven bij"},
	"revoke":            {"Revoke", "Intrekken"},
	"revokekeys":        {"Revoke session keys", "Sessiesleutels intrekken"},
	"sessionkeys":       {"Session keys", "Sessiesleutels"},
	"enrolled":          {"Enrolled", "Ingeschreven"},
	"actions":           {"Actions", "Acties"},
	"chartlabel":        {"Sales per hour, stacked by merchant", "Verkoop per uur, gestapeld per verkooppunt"},
}

// texts are the messages in one language.
type texts map[string]string

func textsFor(l Lang) texts {
	i := 0
	if l == Dutch {
		i = 1
	}
	t := make(texts, len(messages)+len(boothMessages))
	for _, m := range []map[string][2]string{messages, boothMessages} {
		for k, v := range m {
			t[k] = v[i]
		}
	}
	return t
}

var textsByLang = map[Lang]texts{English: textsFor(English), Dutch: textsFor(Dutch)}

// money formats cents as euros: "€ 1,234.50" in English, "€ 1.234,50" in Dutch.
func money(l Lang, cents int64) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	units := strconv.FormatInt(cents/100, 10)
	sep, dec := ",", "."
	if l == Dutch {
		sep, dec = ".", ","
	}
	var b strings.Builder
	for i, ch := range units {
		if i > 0 && (len(units)-i)%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(ch)
	}
	out := "€ " + b.String() + dec + strconv.FormatInt(cents%100+100, 10)[1:]
	if neg {
		out = "−" + out
	}
	return out
}
