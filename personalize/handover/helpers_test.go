package handover_test

import "golang.org/x/mod/sumdb/tlog"

func tlogRecordHash(b []byte) tlog.Hash { return tlog.RecordHash(b) }
