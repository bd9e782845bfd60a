package pos_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/pos"
	"github.com/loopcard/loopcard/api/terminal"
)

// TestBarBrowser drives the bar's app in headless Chromium at 800×480
// against a `loopcard vcard` card in a vpcd slot through a private pcscd,
// with the menu HQ set on the server (PUT /v1/hq/merchants/bar/menu) that
// the terminal synced: two items and one returned cup, present the card,
// paid with a version 2 transaction (its items in the ledger and in the
// product report) and the new balance shown; a void of that payment with
// the card still on the reader (the balance back on the card and in the
// ledger); the server stopped: the status line turns Offline by the
// uploader's idle pass, before any tap; the same basket (two items and a
// returned cup) paid offline (queued, the queue's size and the age of its
// oldest shown), a void offline refused with a clear message, then
// uploaded once it is back and Online again, its lines in the product
// report; cups returned alone credit the card; a declined payment with the
// card's balance; the last transactions; a balance check; Dutch; and
// 1280×800.
// Each screen is photographed and checked by axe-core, and the policy
// blocks nothing the pages use.
func TestBarBrowser(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	version := w.setMenu(t, testMenu)
	term := w.terminal(t) // enrolled and keyed: it fetched the menu with its session key
	till := pos.NewTerminalTill(term, nil)
	m, ok := till.Menu()
	require.True(t, ok, "the terminal synced the server's menu")
	require.Equal(t, version, m.Version)
	bar, err := pos.NewBar(pos.BarOptions{Till: till, Reader: w.reader(t)})
	require.NoError(t, err)
	upCtx, stopUp := context.WithCancel(ctx)
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		term.RunUploader(upCtx, 100*time.Millisecond, terminal.Backoff{Min: 100 * time.Millisecond, Max: 300 * time.Millisecond}, till.Report)
	}()
	t.Cleanup(func() { stopUp(); <-upDone })
	b := newTab(t, serve(t, bar), "pos-bar")
	card := w.cards[0]
	unsent := func() int { n, _ := till.Unsent(); return n }

	b.open("/")
	b.page("sale-empty", "Drinks", "Beer 0.3l", "Cup: returned", "The basket is empty", "Online")
	b.click("#add-beer", "main")
	b.click("#add-cola", "main")
	b.click("#return-cup", "main")
	b.page("basket", "1 × Beer 0.3l", "1 × Cola", "1 × Cup (returned)")
	require.Equal(t, "€ 5.00", b.text("#total"), "3.50 + 2.50 - 1.00")

	// The card is not on the reader yet: the app asks for it.
	b.click("#charge", "#present")
	b.page("present", "Present the card", "€ 5.00")
	w.insert(t, 0)
	b.do(waitFor("#result"))
	b.page("paid", "Paid € 5.00", "New balance")
	require.Equal(t, "€ 15.00", b.text("#balance"))
	require.Eventually(t, func() bool { return unsent() == 0 }, 20*time.Second, 50*time.Millisecond, "uploaded")
	require.Equal(t, int64(1500), w.ledgerBalance(t, card))
	// A version 2 transaction: the ledger keeps its lines, and the
	// product report counts them (the cup returned as -1).
	products := func() (map[string][2]int64, int64) {
		rep, err := w.stack.Ledger.Products(ctx, org, "fest", time.Time{})
		require.NoError(t, err)
		got := map[string][2]int64{}
		for _, l := range rep.Lines {
			q := got[l.Product]
			got[l.Product] = [2]int64{q[0] + l.Quantity, q[1] + l.Revenue}
		}
		return got, rep.Total
	}
	online, total := products()
	require.Equal(t, int64(500), total)
	require.Equal(t, map[string][2]int64{"beer": {1, 350}, "cola": {1, 250}, "cup": {-1, -100}}, online, "no unitemized line")

	// Void it while the card is still on the reader: all of it back.
	b.click("#void", "main")
	b.do(waitFor("#result"))
	b.page("void", "Voided € 5.00", "New balance")
	require.Equal(t, "€ 20.00", b.text("#balance"))
	require.Eventually(t, func() bool { return w.ledgerBalance(t, card) == 2000 }, 20*time.Second, 50*time.Millisecond, "the ledger has the void")
	b.click("#new", "main")

	// The server goes away: the uploader's idle pass tells the screen,
	// with no tap.
	require.NoError(t, w.stack.StopServer())
	require.Eventually(t, func() bool { return !till.Online() }, 10*time.Second, 50*time.Millisecond, "offline by the idle pass")
	b.open("/")
	b.page("sale-offline-idle", "Offline", "The basket is empty")

	// The bar goes on taking payments, offline, with the synced menu: two
	// items and a returned cup again.
	b.click("#add-beer", "main")
	b.click("#add-fries", "main")
	b.click("#return-cup", "main")
	b.page("basket-offline", "1 × Beer 0.3l", "1 × Fries", "1 × Cup (returned)", "Offline")
	b.click("#charge", "main")
	b.do(waitFor("#result"))
	b.page("paid-offline", "Paid € 6.50", "Offline", "1 to upload")
	require.Equal(t, "€ 13.50", b.text("#balance"))
	// A void needs the server: the screen says so and nothing changes.
	b.click("#void", "main")
	b.do(waitFor("#result"))
	b.page("void-offline", "This needs the server, which cannot be reached now")
	b.click("#new", "main")
	b.page("sale-offline", "Offline", "1 to upload, oldest")
	require.Equal(t, 1, unsent())
	require.Equal(t, int64(2000), w.ledgerBalance(t, card), "the ledger has not seen the offline payment")
	b.open("/recent")
	b.page("recent-offline", "Last transactions", "queued", "uploaded", "1 × Fries", "Voided")

	// It is back: the screen turns Online and the queue goes up by itself.
	require.NoError(t, w.stack.StartServer(ctx))
	require.Eventually(t, func() bool { return unsent() == 0 && till.Online() }, 20*time.Second, 50*time.Millisecond, "uploaded after the restart")
	require.Equal(t, int64(1350), w.ledgerBalance(t, card))
	// The offline payment's lines arrived with it, as they were taken.
	after, total2 := products()
	require.Equal(t, total+650, total2)
	for id, d := range map[string][2]int64{"beer": {1, 350}, "fries": {1, 400}, "cup": {-1, -100}} {
		require.Equal(t, [2]int64{online[id][0] + d[0], online[id][1] + d[1]}, after[id], id)
	}
	require.Equal(t, online["cola"], after["cola"])
	require.NotContains(t, after, "", "no unitemized line")
	// Cups brought back alone: the deposit goes onto the card (the bar
	// pays it back from its takings).
	b.open("/")
	b.click("#return-cup", "main")
	b.click("#return-cup", "main")
	b.page("basket-return", "2 × Cup (returned)", "Give deposit back")
	b.click("#charge", "main")
	b.do(waitFor("#result"))
	b.page("returned", "Deposit given back € 2.00", "New balance")
	require.Equal(t, "€ 15.50", b.text("#balance"))
	require.Eventually(t, func() bool { return w.ledgerBalance(t, card) == 1550 }, 20*time.Second, 50*time.Millisecond, "the ledger has the return")
	b.click("#new", "main")

	b.open("/recent")
	b.page("recent-online", "Online", "Deposit given back")
	require.NotContains(t, b.text("#recent"), "queued")

	// More than the card holds: declined, with its balance.
	b.open("/")
	for range 5 {
		b.click("#add-fries", "main")
	}
	b.click("#charge", "main")
	b.do(waitFor("#result"))
	b.page("declined", "Declined", "Not enough on the card.")
	require.Equal(t, "€ 15.50", b.text("#balance"))
	b.click("#new", "main")
	b.click("#clear", "main")

	b.open("/balance")
	b.page("balance", "Check a card's balance")
	b.click("#read", "main")
	b.do(waitFor("#result"))
	b.page("balance-read", "Balance")
	require.Equal(t, "€ 15.50", b.text("#balance"))
	b.click("#new", "main")

	b.open("/?lang=nl")
	b.click("#add-beer", "main")
	b.page("nl-sale", "Mandje", "Afrekenen", "Online")
	b.click("#charge", "main")
	b.do(waitFor("#result"))
	b.page("nl-paid", "Betaald € 3,50", "Nieuw saldo")
	b.click("#new", "main")

	b.size(1280, 800)
	b.open("/?lang=en")
	b.click("#add-cola", "main")
	b.page("sale-1280x800", "Basket", "Cola")
	b.open("/recent")
	b.page("recent-1280x800", "Last transactions")
	b.noPolicyErrors()

	require.Eventually(t, func() bool { return unsent() == 0 }, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, int64(2000-500+500-650+200-350), w.ledgerBalance(t, card))
}

// TestStoreBrowser drives the store till's app: sell a card with deposit
// and credit, top it up with cash, check its balance, and close the day
// with the counted cash, which the API finds as expected.
func TestStoreBrowser(t *testing.T) {
	w := newWorld(t)
	// The organizer's business day, chosen so that its date now is not
	// the UTC date: the till counts and closes by it.
	now := time.Now()
	var today string
	for _, zone := range []string{"Pacific/Kiritimati", "Pacific/Pago_Pago"} {
		for h := range 24 {
			loc, err := time.LoadLocation(zone)
			require.NoError(t, err)
			if d := now.Add(-time.Duration(h) * time.Hour).In(loc).Format(time.DateOnly); today == "" && d != now.UTC().Format(time.DateOnly) {
				require.NoError(t, w.stack.Ledger.SetBusinessDay(context.Background(), org, zone, h))
				today = d
			}
		}
	}
	bd, err := w.stack.Ledger.BusinessDay(context.Background(), org)
	require.NoError(t, err)
	require.Equal(t, today, bd.Of(now).Format(time.DateOnly))
	sc, dir := w.storeClient(t)
	st, err := pos.NewStore(pos.StoreOptions{Client: sc, Reader: w.reader(t), Deposit: 500, Credit: 1000, TallyFile: pos.TallyFile(dir)})
	require.NoError(t, err)
	b := newTab(t, serve(t, st), "pos-store")
	card := w.cards[1]

	b.open("/")
	b.page("store-home", "Today's cash ("+today+")", "Sell a card", "Top up with cash", "Today's cash", "Close the day")
	b.click("#sell", "#present")
	b.page("store-present", "Present the card", "€ 15.00")
	w.insert(t, 1)
	b.do(waitFor("#result"))
	b.page("store-sold", "Card sold", "Deposit", "€ 5.00")
	require.Equal(t, "€ 10.00", b.text("#balance"))
	b.click("#new", "main")

	b.fill("#amount", "20,50")
	b.click("#topup", "main")
	b.do(waitFor("#result"))
	b.page("store-topped-up", "Topped up € 20.50")
	require.Equal(t, "€ 30.50", b.text("#balance"))
	require.Equal(t, int64(3050), w.ledgerBalance(t, card))
	b.click("#new", "main")

	b.click("#read", "main")
	b.do(waitFor("#result"))
	b.page("store-balance", "Card number", card.Number)
	require.Equal(t, "€ 30.50", b.text("#balance"))
	b.click("#new", "main")

	b.page("store-day", "Card sales (1)", "Top-ups (1)")
	require.Equal(t, "€ 35.50", b.text("#cash"))
	b.fill("#amount", "abc")
	b.click("#topup", "main")
	b.page("store-bad-amount", "Give an amount such as 12.50")
	b.open("/")
	b.fill("#counted", "35.50")
	b.click("#close", "#close")
	b.page("store-closed", "Day closed", "Expected cash", today)
	require.Equal(t, "€ 35.50", b.text("#expected"))
	require.Equal(t, "€ 0.00", b.text("#difference"))
	tally, err := os.ReadFile(pos.TallyFile(dir))
	require.NoError(t, err)
	require.Contains(t, string(tally), `"day":"`+today+`"`, "the tally is the business day's")
	b.open("/?lang=nl")
	b.page("nl-store-home", "Kaart verkopen", "Contant geld van vandaag")
	b.noPolicyErrors()
}
