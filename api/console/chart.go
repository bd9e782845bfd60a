package console

import (
	"slices"
	"strings"
	"time"
)

// The sales chart is SVG drawn on the server: one stacked bar per hour,
// one colour (a CSS class) per merchant. The page shows the same figures
// as a table, for screen readers and for the test that checks them.
const (
	chartW, chartH  = 640, 240
	chartLeft       = 8
	chartTop        = 8
	chartBottom     = 24
	chartHours      = 24 // the last hours with sales
	merchantColours = 8
)

type chart struct {
	W, H    int
	Bars    []bar
	XLabels []label
	Legend  []legend
}

type bar struct {
	X, Y, W, H int
	Class      string
	Title      string
}

type label struct {
	X, Y int
	Text string
}

type legend struct {
	Class, Merchant string
}

// salesChart draws the last chartHours hours of hourly sales; amounts are
// formatted by format.
func salesChart(hourly []HourSales, format func(int64) string) *chart {
	if len(hourly) == 0 {
		return nil
	}
	var hours []time.Time
	var merchants []string
	for _, h := range hourly {
		if !slices.ContainsFunc(hours, h.Hour.Equal) {
			hours = append(hours, h.Hour)
		}
		if !slices.Contains(merchants, h.Merchant) {
			merchants = append(merchants, h.Merchant)
		}
	}
	slices.SortFunc(hours, time.Time.Compare)
	slices.Sort(merchants)
	if len(hours) > chartHours {
		hours = hours[len(hours)-chartHours:]
	}
	totals := make([]int64, len(hours))
	for _, h := range hourly {
		if i := slices.IndexFunc(hours, h.Hour.Equal); i >= 0 {
			totals[i] += h.Amount
		}
	}
	top := slices.Max(totals)
	if top <= 0 {
		top = 1
	}
	c := &chart{W: chartW, H: chartH}
	plotH := chartH - chartTop - chartBottom
	slot := (chartW - chartLeft) / len(hours)
	barW := max(slot*3/4, 2)
	class := func(m string) string {
		return "m" + string(rune('0'+slices.Index(merchants, m)%merchantColours))
	}
	for _, m := range merchants {
		c.Legend = append(c.Legend, legend{Class: class(m), Merchant: m})
	}
	for i, hr := range hours {
		x := chartLeft + i*slot
		y := chartTop + plotH
		for _, m := range merchants {
			for _, h := range hourly {
				if !h.Hour.Equal(hr) || h.Merchant != m {
					continue
				}
				bh := int(int64(plotH) * h.Amount / top)
				y -= bh
				c.Bars = append(c.Bars, bar{X: x, Y: y, W: barW, H: bh, Class: class(m),
					Title: hr.UTC().Format("15:00") + " " + m + ": " + format(h.Amount)})
			}
		}
		if len(hours) <= 12 || i%3 == 0 {
			c.XLabels = append(c.XLabels, label{X: x + barW/2, Y: chartH - 8, Text: hr.UTC().Format("15h")})
		}
	}
	return c
}

// lastHours keeps the sales of the last n hours that had sales.
func lastHours(hourly []HourSales, n int) []HourSales {
	var hours []time.Time
	for _, h := range hourly {
		if !slices.ContainsFunc(hours, h.Hour.Equal) {
			hours = append(hours, h.Hour)
		}
	}
	if len(hours) <= n {
		return hourly
	}
	slices.SortFunc(hours, time.Time.Compare)
	first := hours[len(hours)-n]
	out := hourly[:0:0]
	for _, h := range hourly {
		if !h.Hour.Before(first) {
			out = append(out, h)
		}
	}
	return out
}

// foldMerchants keeps the keep-1 merchants that sold most in hourly and
// adds up the others' sales of each hour under the name other, so that
// the chart and its table stay small with many bars: at most keep rows an
// hour. With keep merchants or fewer, hourly is returned as it is.
func foldMerchants(hourly []HourSales, keep int, other string) []HourSales {
	total := map[string]int64{}
	for _, h := range hourly {
		total[h.Merchant] += h.Amount
	}
	if len(total) <= keep {
		return hourly
	}
	merchants := make([]string, 0, len(total))
	for m := range total {
		merchants = append(merchants, m)
	}
	slices.SortFunc(merchants, func(a, b string) int {
		if total[a] != total[b] {
			if total[a] > total[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	kept := merchants[:keep-1]
	var out []HourSales
	others := map[time.Time]int{} // hour: index in out
	for _, h := range hourly {
		if slices.Contains(kept, h.Merchant) {
			out = append(out, h)
			continue
		}
		hr := h.Hour.UTC()
		i, ok := others[hr]
		if !ok {
			i = len(out)
			others[hr] = i
			out = append(out, HourSales{Hour: h.Hour, Merchant: other})
		}
		out[i].Count += h.Count
		out[i].Amount += h.Amount
	}
	// By hour, each hour's "other" row after its merchants.
	slices.SortStableFunc(out, func(a, b HourSales) int {
		if c := a.Hour.Compare(b.Hour); c != 0 {
			return c
		}
		if (a.Merchant == other) != (b.Merchant == other) {
			if a.Merchant == other {
				return 1
			}
			return -1
		}
		return 0
	})
	return out
}
