package models

import "time"

// Seoul is the gym's time zone (Asia/Seoul): its members read times, and its
// days and weeks are counted, on this clock. Stored times are instants.
var Seoul = func() *time.Location {
	l, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		return time.FixedZone("KST", 9*3600) // no tzdata: Korea has no DST
	}
	return l
}()
