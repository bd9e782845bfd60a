package cardpage

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/loopcard/loopcard/api/internal/pagelang"
)

// Lang is a language the pages speak.
type Lang string

// The languages of the pages; English is the fallback.
const (
	English Lang = "en"
	Dutch   Lang = "nl"
)

// Langs are the languages offered in the language switch.
var Langs = []Lang{English, Dutch}

// langCookie remembers the language switch (not secret, not personal).
const langCookie = "lc_lang"

// pickLang chooses the language: ?lang=, then the cookie, then
// Accept-Language (pagelang.Pick).
func pickLang(r *http.Request) (Lang, bool) {
	l, explicit := pagelang.Pick(r, langCookie)
	return Lang(l), explicit
}

// catalog is one language's messages.
type catalog map[string]string

func (l Lang) catalog() catalog {
	if l == Dutch {
		return dutch
	}
	return english
}

// T returns the message key in l; a missing key shows as itself so that
// a test can find it.
func (l Lang) T(key string) string {
	if s, ok := l.catalog()[key]; ok {
		return s
	}
	return key
}

// Money formats cents in euros: €12.50 in English, € 12,50 in Dutch.
func (l Lang) Money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "−", -cents
	}
	units, frac := cents/100, cents%100
	whole := strconv.FormatInt(units, 10)
	sep, dec, cur := ",", ".", "€"
	if l == Dutch {
		sep, dec, cur = ".", ",", "€\u00a0"
	}
	var b strings.Builder
	for i, ch := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(ch)
	}
	return fmt.Sprintf("%s%s%s%s%02d", sign, cur, b.String(), dec, frac)
}

// Time formats a moment of the event in the server's local time zone.
func (l Lang) Time(t time.Time) string {
	if l == Dutch {
		return t.Local().Format("02-01-2006 15:04")
	}
	return t.Local().Format("2 Jan 2006 15:04")
}

// Name is the language's name in itself, for the language switch.
func (l Lang) Name() string {
	if l == Dutch {
		return "Nederlands"
	}
	return "English"
}

var english = catalog{
	"auto_title":                "Auto top-up",
	"auto_rule":                 "Reload %s when the balance is below %s, at most %s a day.",
	"auto_setup":                "waiting for the payment provider to save your card",
	"auto_active":               "on",
	"auto_disabled":             "off",
	"auto_reason":               "Turned off:",
	"auto_charges":              "Auto top-up charges",
	"auto_ch_triggered":         "being charged",
	"auto_ch_processing":        "being processed",
	"auto_ch_succeeded":         "paid",
	"auto_ch_failed":            "failed",
	"auto_ch_requires_action":   "your bank asked for your approval: not paid",
	"auto_stop":                 "Turn auto top-up off",
	"auto_hint":                 "When a payment terminal sees the card below the amount you choose, your saved payment method is charged and the amount is added at that terminal or the next. Your card details stay with the payment provider.",
	"auto_amount":               "Reload",
	"auto_threshold":            "When the balance is below",
	"auto_limit":                "At most a day",
	"auto_submit":               "Save a payment method",
	"auto_saved":                "Auto top-up turns on as soon as the payment provider confirms your payment method.",
	"auto_cancelled":            "Auto top-up was not set up: no payment method was saved.",
	"auto_invalid":              "Choose an amount, a threshold and a daily limit of at least the amount.",
	"site":                      "Loopcard",
	"skip":                      "Skip to content",
	"language":                  "Language",
	"privacy":                   "Privacy",
	"back":                      "Back to your card",
	"card_title":                "Your card",
	"card_no":                   "Card",
	"event":                     "Event",
	"balance":                   "Balance",
	"status":                    "Status",
	"status_active":             "active",
	"status_blocked":            "blocked",
	"status_replaced":           "replaced by a new card",
	"block_link":                "Lost or stolen? Block the card",
	"block_title":               "Block your card",
	"block_hint":                "Blocking is for good: payment terminals refuse the card as soon as they have the news, even offline. At a store, a new card then takes the balance that is left.",
	"block_reason":              "What happened?",
	"reason_lost":               "I lost the card",
	"reason_stolen":             "The card was stolen",
	"block_reason_required":     "Choose lost or stolen.",
	"block_submit":              "Block the card",
	"block_done":                "The card is blocked. Take your card number to a store: a new card gets the balance that is left.",
	"status_refunded":           "refund requested",
	"pending":                   "Waiting to be loaded",
	"pending_hint":              "Paid online. It is added to your card at the next payment terminal you use.",
	"non_refundable":            "Of which vouchers",
	"non_refundable_hint":       "Voucher credit is spent first and is not refunded.",
	"voucher":                   "Voucher",
	"voucher_code":              "Voucher code",
	"voucher_hint":              "As printed on the voucher, for example ABCD-EFGH-JKLM-NPQR. A voucher is used once; it is not refunded.",
	"voucher_redeem":            "Redeem",
	"voucher_done":              "Voucher redeemed: %s is added to your card at the next payment terminal you use.",
	"err_voucher":               "This voucher code is unknown, already used or expired.",
	"topup":                     "Top up",
	"topup_hint":                "Choose an amount, then pay with our payment provider.",
	"topup_amount":              "Top up %s",
	"topup_unavailable":         "Online top-up is not available right now. You can top up with cash or card at a top-up point.",
	"topup_done":                "Thank you. Your payment is being processed; the amount is added at the next payment terminal.",
	"topup_cancelled":           "The payment was cancelled; nothing was charged.",
	"topup_done_elsewhere":      "Thank you. Your payment is being processed; the amount is added at the next payment terminal. Scan the QR code on your card to see its balance.",
	"topup_cancelled_elsewhere": "The payment was cancelled; nothing was charged. Scan the QR code on your card to try again.",
	"history_title":             "Transactions",
	"history_hint":              "Enter the PIN printed on your card's label to see your transactions.",
	"pin":                       "PIN",
	"pin_hint":                  "6 digits, printed on your card's label",
	"show_history":              "Show transactions",
	"claimed_hint":              "This card is linked to a profile. Log in to see its transactions.",
	"no_entries":                "No transactions yet.",
	"when":                      "When",
	"what":                      "What",
	"amount":                    "Amount",
	"payment":                   "Payment",
	"topup_entry":               "Top-up",
	"cash":                      "cash",
	"online":                    "online",
	"st_pending":                "waiting",
	"st_loaded":                 "loaded",
	"st_processing":             "payment processing",
	"st_failed":                 "payment failed",
	"st_abandoned":              "not paid",
	"st_refunded":               "refunded",
	"st_accepted":               "",
	"refund_title":              "Refund",
	"refund_hint":               "After the event, the remaining balance can be paid back to your bank account. Enter the PIN, the account holder's name and the IBAN.",
	"refund_link":               "Request a refund",
	"refunds_title":             "Refund requests",
	"rf_requested":              "requested",
	"rf_paid":                   "paid",
	"rf_pending":                "pending: the amount is fixed when it is paid out, once the payment terminals have sent their payments",
	"rf_nothing_due":            "nothing to pay: payments made with the card before the request used up its balance",
	"rf_cancelled":              "cancelled",
	"name":                      "Account holder's name",
	"iban":                      "IBAN",
	"iban_hint":                 "For example NL91 ABNA 0417 1643 00",
	"iban_invalid":              "This IBAN is not valid. Check it for typing errors.",
	"name_required":             "Enter the account holder's name.",
	"request_refund":            "Request refund",
	"refund_done":               "Your refund is requested; the card holds %s now. The amount is fixed when the refund is paid out, once the payment terminals have sent their payments, and paid to your bank account after the event.",
	"claim_title":               "Link to a profile",
	"claim_link":                "Link this card to a profile",
	"claim_hint":                "Optional. With a profile you see all your cards with one login, and a lost card's balance can be refunded. After linking, the QR code and the PIN alone no longer show the transactions.",
	"email":                     "Email address",
	"password":                  "Password",
	"password_hint":             "At least 10 characters. If the email address already has a profile, enter its password.",
	"consent":                   "I agree that Loopcard keeps my email address and links it to this card, as the privacy notice describes. I can export or erase this data at any time.",
	"consent_required":          "Linking a card needs your consent.",
	"claim":                     "Link card",
	"login_title":               "Log in to your profile",
	"login_link":                "Log in to your profile",
	"login":                     "Log in",
	"logout":                    "Log out",
	"account_title":             "Your profile",
	"since":                     "Profile since",
	"export_title":              "Your data",
	"export_hint":               "Download everything we keep about you, as a JSON file.",
	"export":                    "Download my data",
	"erase_title":               "Erase your profile",
	"erase_hint":                "This deletes your email address, your password, the link to your cards and your bank details. Your cards and their balances keep working; an open refund request is cancelled.",
	"erase_confirm":             "Yes, erase my personal data",
	"erase_required":            "Tick the box to confirm.",
	"erase":                     "Erase my profile",
	"erased":                    "Your personal data is erased.",
	"err_unknown_card":          "This card is not known. Scan the QR code on the card again.",
	"err_wrong_pin":             "Wrong PIN. After 5 wrong PINs, PIN entry is locked for a while.",
	"err_pin_format":            "A PIN is 6 digits.",
	"err_locked":                "Too many wrong PINs: PIN entry is locked for now. Try again later; your card still works for payments.",
	"err_busy":                  "Too many requests. Wait a moment and try again.",
	"err_claimed":               "This card is linked to a profile. Log in to see its transactions.",
	"err_not_active":            "This card is not active.",
	"err_nothing":               "There is no balance to refund.",
	"err_refund_exists":         "A refund is already requested for this card.",
	"err_claim_not_added":       "The card could not be added with this email address and password. If the address has a profile, enter its password; after several wrong passwords, wait a few minutes.",
	"err_claimed_other":         "This card is linked to another profile.",
	"err_invalid":               "Check the form: enter a valid email address and a password of 10 to 200 characters.",
	"err_login":                 "Wrong email address or password. After several wrong passwords, wait a few minutes.",
	"err_session":               "You are not logged in. Scan the QR code on your card and choose “Log in to your profile”.",
	"err_form":                  "Check the marked fields.",
	"err_csrf":                  "This form has expired. Go back, reload the page and try again.",
	"err_generic":               "Something went wrong on our side. Try again in a moment.",
	"err_not_found":             "Page not found.",
	"privacy_title":             "Privacy notice",
	"privacy_who":               "Who we are",
	"privacy_who_text":          "The event organizer runs Loopcard, its cashless payment system, and is responsible for your data. Contact the organizer's information desk for any question about your data.",
	"privacy_what":              "What we keep",
	"privacy_what_text":         "Without a profile: only your card's number, balance and transactions, which are not linked to your name. The link in the QR code and the PIN are printed on the card and stored only in a form that cannot be read back.",
	"privacy_opt":               "Optional data, with your consent",
	"privacy_opt_text":          "If you link a card to a profile: your email address (stored encrypted) and your password (stored as an Argon2id hash). If you request a refund: the account holder's name and IBAN (stored encrypted), to pay the refund.",
	"privacy_why":               "Why and how long",
	"privacy_why_text":          "To run the payments, refund balances and meet bookkeeping law. Profile data is kept until you erase it; bank details until the refund is paid. Transactions are kept as long as bookkeeping law requires, without your name.",
	"privacy_rights":            "Your rights",
	"privacy_rights_text":       "Log in to your profile to download all your data (access, portability) or to erase it. You may also ask the organizer to correct or restrict your data, and complain to your data protection authority.",
	"privacy_cookies":           "Cookies",
	"privacy_cookies_text":      "Only what the page needs: a form protection cookie, your language choice and, while you are logged in, your login. No tracking, no analytics.",
}

var dutch = catalog{
	"auto_title":                "Automatisch opwaarderen",
	"auto_rule":                 "%s opwaarderen als het saldo onder %s komt, hoogstens %s per dag.",
	"auto_setup":                "wacht tot de betaalprovider je kaart heeft opgeslagen",
	"auto_active":               "aan",
	"auto_disabled":             "uit",
	"auto_reason":               "Uitgezet:",
	"auto_charges":              "Automatische opwaarderingen",
	"auto_ch_triggered":         "wordt afgeschreven",
	"auto_ch_processing":        "wordt verwerkt",
	"auto_ch_succeeded":         "betaald",
	"auto_ch_failed":            "mislukt",
	"auto_ch_requires_action":   "je bank vroeg om je goedkeuring: niet betaald",
	"auto_stop":                 "Automatisch opwaarderen uitzetten",
	"auto_hint":                 "Als een betaalautomaat ziet dat het saldo onder het gekozen bedrag is, wordt je opgeslagen betaalmethode belast en komt het bedrag erbij bij die automaat of de volgende. Je kaartgegevens blijven bij de betaalprovider.",
	"auto_amount":               "Opwaarderen met",
	"auto_threshold":            "Als het saldo onder",
	"auto_limit":                "Hoogstens per dag",
	"auto_submit":               "Betaalmethode opslaan",
	"auto_saved":                "Automatisch opwaarderen gaat aan zodra de betaalprovider je betaalmethode bevestigt.",
	"auto_cancelled":            "Automatisch opwaarderen is niet ingesteld: er is geen betaalmethode opgeslagen.",
	"auto_invalid":              "Kies een bedrag, een grens en een daglimiet van minstens het bedrag.",
	"site":                      "Loopcard",
	"skip":                      "Naar de inhoud",
	"language":                  "Taal",
	"privacy":                   "Privacy",
	"back":                      "Terug naar je kaart",
	"card_title":                "Je kaart",
	"card_no":                   "Kaart",
	"event":                     "Evenement",
	"balance":                   "Saldo",
	"status":                    "Status",
	"status_active":             "actief",
	"status_blocked":            "geblokkeerd",
	"status_replaced":           "vervangen door een nieuwe kaart",
	"block_link":                "Kwijt of gestolen? Blokkeer de kaart",
	"block_title":               "Je kaart blokkeren",
	"block_hint":                "Blokkeren is definitief: betaalterminals weigeren de kaart zodra ze het bericht hebben, ook offline. Bij een verkooppunt krijgt een nieuwe kaart daarna het saldo dat over is.",
	"block_reason":              "Wat is er gebeurd?",
	"reason_lost":               "Ik ben de kaart kwijt",
	"reason_stolen":             "De kaart is gestolen",
	"block_reason_required":     "Kies kwijt of gestolen.",
	"block_submit":              "Blokkeer de kaart",
	"block_done":                "De kaart is geblokkeerd. Ga met je kaartnummer naar een verkooppunt: een nieuwe kaart krijgt het saldo dat over is.",
	"status_refunded":           "terugbetaling aangevraagd",
	"pending":                   "Wacht op opwaarderen",
	"pending_hint":              "Online betaald. Het komt op je kaart bij de volgende betaalterminal die je gebruikt.",
	"non_refundable":            "Waarvan tegoedbonnen",
	"non_refundable_hint":       "Tegoed van bonnen wordt eerst besteed en niet terugbetaald.",
	"voucher":                   "Tegoedbon",
	"voucher_code":              "Code van de tegoedbon",
	"voucher_hint":              "Zoals op de bon gedrukt, bijvoorbeeld ABCD-EFGH-JKLM-NPQR. Een bon is eenmalig te gebruiken en wordt niet terugbetaald.",
	"voucher_redeem":            "Inwisselen",
	"voucher_done":              "Tegoedbon ingewisseld: %s komt op je kaart bij de volgende betaalterminal die je gebruikt.",
	"err_voucher":               "Deze code is onbekend, al gebruikt of verlopen.",
	"topup":                     "Opwaarderen",
	"topup_hint":                "Kies een bedrag en betaal via onze betaalprovider.",
	"topup_amount":              "Waardeer %s op",
	"topup_unavailable":         "Online opwaarderen is nu niet mogelijk. Je kunt contant of met je pinpas opwaarderen bij een oplaadpunt.",
	"topup_done":                "Bedankt. Je betaling wordt verwerkt; het bedrag komt erbij bij de volgende betaalterminal.",
	"topup_cancelled":           "De betaling is geannuleerd; er is niets afgeschreven.",
	"topup_done_elsewhere":      "Bedankt. Je betaling wordt verwerkt; het bedrag komt erbij bij de volgende betaalterminal. Scan de QR-code op je kaart om het saldo te zien.",
	"topup_cancelled_elsewhere": "De betaling is geannuleerd; er is niets afgeschreven. Scan de QR-code op je kaart om het opnieuw te proberen.",
	"history_title":             "Transacties",
	"history_hint":              "Vul de pincode van het etiket van je kaart in om je transacties te zien.",
	"pin":                       "Pincode",
	"pin_hint":                  "6 cijfers, op het etiket van je kaart",
	"show_history":              "Toon transacties",
	"claimed_hint":              "Deze kaart is gekoppeld aan een profiel. Log in om de transacties te zien.",
	"no_entries":                "Nog geen transacties.",
	"when":                      "Wanneer",
	"what":                      "Wat",
	"amount":                    "Bedrag",
	"payment":                   "Betaling",
	"topup_entry":               "Opwaardering",
	"cash":                      "contant",
	"online":                    "online",
	"st_pending":                "wacht",
	"st_loaded":                 "opgeladen",
	"st_processing":             "betaling in behandeling",
	"st_failed":                 "betaling mislukt",
	"st_abandoned":              "niet betaald",
	"st_refunded":               "terugbetaald",
	"st_accepted":               "",
	"refund_title":              "Terugbetaling",
	"refund_hint":               "Na het evenement kan het resterende saldo naar je bankrekening worden teruggestort. Vul de pincode, de naam van de rekeninghouder en het IBAN in.",
	"refund_link":               "Terugbetaling aanvragen",
	"refunds_title":             "Aanvragen voor terugbetaling",
	"rf_requested":              "aangevraagd",
	"rf_paid":                   "betaald",
	"rf_pending":                "in behandeling: het bedrag wordt vastgesteld bij de uitbetaling, zodra de betaalterminals hun betalingen hebben doorgegeven",
	"rf_nothing_due":            "niets te betalen: betalingen met de kaart van vóór de aanvraag gebruikten het saldo op",
	"rf_cancelled":              "geannuleerd",
	"name":                      "Naam rekeninghouder",
	"iban":                      "IBAN",
	"iban_hint":                 "Bijvoorbeeld NL91 ABNA 0417 1643 00",
	"iban_invalid":              "Dit IBAN klopt niet. Controleer het op typefouten.",
	"name_required":             "Vul de naam van de rekeninghouder in.",
	"request_refund":            "Terugbetaling aanvragen",
	"refund_done":               "Je terugbetaling is aangevraagd; de kaart heeft nu %s. Het bedrag wordt vastgesteld bij de uitbetaling, zodra de betaalterminals hun betalingen hebben doorgegeven, en na het evenement op je rekening gestort.",
	"claim_title":               "Koppelen aan een profiel",
	"claim_link":                "Koppel deze kaart aan een profiel",
	"claim_hint":                "Niet verplicht. Met een profiel zie je al je kaarten met één login, en kan het saldo van een verloren kaart worden terugbetaald. Na het koppelen tonen de QR-code en de pincode alleen de transacties niet meer.",
	"email":                     "E-mailadres",
	"password":                  "Wachtwoord",
	"password_hint":             "Minstens 10 tekens. Heeft het e-mailadres al een profiel, vul dan dat wachtwoord in.",
	"consent":                   "Ik ga ermee akkoord dat Loopcard mijn e-mailadres bewaart en aan deze kaart koppelt, zoals de privacyverklaring beschrijft. Ik kan deze gegevens altijd downloaden of wissen.",
	"consent_required":          "Voor het koppelen is je toestemming nodig.",
	"claim":                     "Kaart koppelen",
	"login_title":               "Inloggen op je profiel",
	"login_link":                "Inloggen op je profiel",
	"login":                     "Inloggen",
	"logout":                    "Uitloggen",
	"account_title":             "Je profiel",
	"since":                     "Profiel sinds",
	"export_title":              "Je gegevens",
	"export_hint":               "Download alles wat we over je bewaren, als JSON-bestand.",
	"export":                    "Download mijn gegevens",
	"erase_title":               "Je profiel wissen",
	"erase_hint":                "Dit wist je e-mailadres, je wachtwoord, de koppeling met je kaarten en je bankgegevens. Je kaarten en hun saldo blijven werken; een open aanvraag voor terugbetaling vervalt.",
	"erase_confirm":             "Ja, wis mijn persoonsgegevens",
	"erase_required":            "Vink het vakje aan om te bevestigen.",
	"erase":                     "Wis mijn profiel",
	"erased":                    "Je persoonsgegevens zijn gewist.",
	"err_unknown_card":          "Deze kaart is niet bekend. Scan de QR-code op de kaart opnieuw.",
	"err_wrong_pin":             "Verkeerde pincode. Na 5 verkeerde pincodes wordt het invoeren van de pincode een tijd geblokkeerd.",
	"err_pin_format":            "Een pincode bestaat uit 6 cijfers.",
	"err_locked":                "Te vaak een verkeerde pincode: het invoeren van de pincode is voorlopig geblokkeerd. Probeer het later opnieuw; met je kaart betalen blijft gewoon werken.",
	"err_busy":                  "Te veel verzoeken. Wacht even en probeer het opnieuw.",
	"err_claimed":               "Deze kaart is gekoppeld aan een profiel. Log in om de transacties te zien.",
	"err_not_active":            "Deze kaart is niet actief.",
	"err_nothing":               "Er is geen saldo om terug te betalen.",
	"err_refund_exists":         "Voor deze kaart is al een terugbetaling aangevraagd.",
	"err_claim_not_added":       "De kaart kon niet worden toegevoegd met dit e-mailadres en wachtwoord. Heeft het adres een profiel, vul dan het wachtwoord daarvan in; wacht na meerdere foute wachtwoorden een paar minuten.",
	"err_claimed_other":         "Deze kaart is gekoppeld aan een ander profiel.",
	"err_invalid":               "Controleer het formulier: vul een geldig e-mailadres in en een wachtwoord van 10 tot 200 tekens.",
	"err_login":                 "Verkeerd e-mailadres of wachtwoord. Wacht na meerdere foute wachtwoorden een paar minuten.",
	"err_session":               "Je bent niet ingelogd. Scan de QR-code op je kaart en kies „Inloggen op je profiel”.",
	"err_form":                  "Controleer de gemarkeerde velden.",
	"err_csrf":                  "Dit formulier is verlopen. Ga terug, laad de pagina opnieuw en probeer het nog eens.",
	"err_generic":               "Er ging bij ons iets mis. Probeer het zo opnieuw.",
	"err_not_found":             "Pagina niet gevonden.",
	"privacy_title":             "Privacyverklaring",
	"privacy_who":               "Wie we zijn",
	"privacy_who_text":          "De organisator van het evenement beheert Loopcard, het betaalsysteem zonder contant geld, en is verantwoordelijk voor je gegevens. Met vragen over je gegevens kun je terecht bij de informatiebalie van de organisator.",
	"privacy_what":              "Wat we bewaren",
	"privacy_what_text":         "Zonder profiel: alleen het nummer, het saldo en de transacties van je kaart, niet gekoppeld aan je naam. De link in de QR-code en de pincode staan op de kaart en worden alleen opgeslagen in een vorm die niet terug te lezen is.",
	"privacy_opt":               "Gegevens die je vrijwillig geeft, met je toestemming",
	"privacy_opt_text":          "Als je een kaart aan een profiel koppelt: je e-mailadres (versleuteld opgeslagen) en je wachtwoord (als Argon2id-hash). Als je een terugbetaling aanvraagt: de naam van de rekeninghouder en het IBAN (versleuteld), om terug te betalen.",
	"privacy_why":               "Waarom en hoe lang",
	"privacy_why_text":          "Om de betalingen uit te voeren, saldo terug te betalen en aan de boekhoudwet te voldoen. Profielgegevens bewaren we tot je ze wist; bankgegevens tot de terugbetaling is gedaan. Transacties bewaren we zo lang als de boekhoudwet eist, zonder je naam.",
	"privacy_rights":            "Je rechten",
	"privacy_rights_text":       "Log in op je profiel om al je gegevens te downloaden (inzage, overdraagbaarheid) of te wissen. Je kunt de organisator ook vragen je gegevens te verbeteren of te beperken, en een klacht indienen bij de Autoriteit Persoonsgegevens.",
	"privacy_cookies":           "Cookies",
	"privacy_cookies_text":      "Alleen wat de pagina nodig heeft: een cookie die de formulieren beschermt, je taalkeuze en, zolang je bent ingelogd, je login. Geen tracking, geen statistieken.",
}
