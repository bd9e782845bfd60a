package storeclient

import (
	"context"

	"github.com/loopcard/loopcard/api/apitype"
)

// CloseDay closes the store's day (YYYY-MM-DD) with the cash counted at
// the till (POST /v1/stores/{store}/day-close): the API answers the cash it
// expected and the difference.
func CloseDay(ctx context.Context, cfg Config, day string, counted int64) (apitype.DayCloseResponse, error) {
	if err := cfg.defaults(); err != nil {
		return apitype.DayCloseResponse{}, err
	}
	var out apitype.DayCloseResponse
	err := call(ctx, &cfg, "", "POST", "/v1/stores/"+cfg.Store+"/day-close",
		apitype.DayCloseRequest{Day: day, Counted: counted}, &out)
	return out, err
}

// BusinessDay asks for the organizer's business day (GET
// /v1/stores/{store}/business-day): its time zone, day-end hour and the day
// it is now, by which the store's days are closed.
func BusinessDay(ctx context.Context, cfg Config) (apitype.BusinessDay, error) {
	if err := cfg.defaults(); err != nil {
		return apitype.BusinessDay{}, err
	}
	var out apitype.BusinessDay
	err := call(ctx, &cfg, "", "GET", "/v1/stores/"+cfg.Store+"/business-day", nil, &out)
	return out, err
}
