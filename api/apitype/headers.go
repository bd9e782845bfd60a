package apitype

// Header names of the API.
const (
	HeaderPIN        = "Loopcard-PIN"
	HeaderSessionKey = "Loopcard-Session-Key"
)
